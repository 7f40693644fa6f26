"""Text encoders: the torch module that is exported, and the same module as the reference.

The exported graph and the PyTorch reference are built by one function, ``build_encoder``, so
the reference runtime and validation compare against exactly what was exported::

    input_ids      [batch, sequence] ─┐
    attention_mask [batch, sequence] ─┼─> AutoModel ─> last_hidden_state [batch, sequence, hidden]
    token_type_ids [batch, sequence] ─┘        │
                                   (sentence-transformers folders only)
                                    pooling (mean/cls/max) ─> normalise ─> sentence_embedding [batch, hidden]
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import InputError, UnsupportedModelError
from edgekit.models.source import load_weights
from edgekit.models.specs import ENCODER_TASKS, EncoderSpec, supported_model_types
from edgekit.models.specs import spec_for as encoder_spec_for

POOLING_MODES = ("mean", "cls", "max", "mean_sqrt_len")
_ST_SUPPORTED = {"Transformer", "Pooling", "Normalize"}


@dataclass(frozen=True)
class Pooling:
    mode: str
    normalize: bool


def read_pooling(model_dir: Path) -> Pooling | None:
    """The pooling a sentence-transformers folder declares (modules.json), or None for a plain HF folder."""
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return None
    try:
        modules = json.loads(modules_file.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"'{modules_file}' is not valid JSON", "fix or remove it") from exc
    kinds = {m.get("type", "").rsplit(".", 1)[-1]: m for m in modules}
    unknown = sorted(set(kinds) - _ST_SUPPORTED)
    if unknown:
        raise UnsupportedModelError(
            f"sentence-transformers module(s) {', '.join(unknown)} in '{model_dir}' are not supported",
            "export with --task feature-extraction to get last_hidden_state only",
        )
    if "Pooling" not in kinds:
        return None
    pool_cfg_file = model_dir / kinds["Pooling"].get("path", "1_Pooling") / "config.json"
    cfg = (
        json.loads(pool_cfg_file.read_text())
        if pool_cfg_file.is_file()
        else {"pooling_mode_mean_tokens": True}
    )
    modes = [
        m
        for m in POOLING_MODES
        if cfg.get(f"pooling_mode_{m}_tokens" if m != "cls" else "pooling_mode_cls_token")
    ]
    if len(modes) != 1:
        raise UnsupportedModelError(
            f"pooling config '{pool_cfg_file}' asks for {modes or 'no'} pooling modes; edgekit supports exactly one of {POOLING_MODES}",
            "export with --task feature-extraction",
        )
    return Pooling(mode=modes[0], normalize="Normalize" in kinds)


def input_names_for(spec: EncoderSpec, tokenizer: Any, model: Any) -> list[str]:
    """The tokenizer's input names that the family and the model's forward both accept, in the tokenizer's order."""
    accepted = set(inspect.signature(model.forward).parameters)
    names = [n for n in tokenizer.model_input_names if n in spec.inputs and n in accepted]
    if "input_ids" not in names:
        raise UnsupportedModelError(
            f"the tokenizer's inputs {tokenizer.model_input_names} include no input_ids",
            "use a text tokenizer",
        )
    return names


def load_encoder(model_dir: Path, spec: EncoderSpec):
    """Load the HF model in fp32 eval mode with the spec's attention implementation."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if spec.attn_implementation:
        kwargs["attn_implementation"] = spec.attn_implementation

    def load():
        try:
            return AutoModel.from_pretrained(str(model_dir), **kwargs)
        except ValueError:
            kwargs.pop("attn_implementation", None)  # the family does not offer it: use its default
            return AutoModel.from_pretrained(str(model_dir), **kwargs)

    return load_weights(load, model_dir).eval()


def given(**inputs: Any) -> dict[str, Any]:
    """The inputs a graph was given (its optional ones may be None), as keywords for the model."""
    return {name: value for name, value in inputs.items() if value is not None}


def _encoder_module_class():
    import torch

    class EncoderModule(torch.nn.Module):
        """AutoModel + optional sentence pooling. Inputs by keyword, outputs as a tuple in ``output_names`` order."""

        def __init__(self, model, pooling: Pooling | None):
            super().__init__()
            self.model = model
            self.pooling = pooling
            self.additive_mask = False
            """Hand the model a (B, 1, 1, T) additive float mask instead of the 0/1 one: the model
            then builds no mask of its own (ExecuTorch's quantizer cannot trace transformers' mask code)."""

        def forward(self, input_ids, attention_mask=None, token_type_ids=None):
            model_mask = attention_mask
            if self.additive_mask and attention_mask is not None:
                keep = attention_mask[:, None, None, :].to(torch.float32)
                model_mask = (1.0 - keep) * torch.finfo(torch.float32).min
            kwargs = given(input_ids=input_ids, attention_mask=model_mask, token_type_ids=token_type_ids)
            hidden = self.model(**kwargs).last_hidden_state  # (B, T, H)
            if self.pooling is None:
                return (hidden,)
            if attention_mask is None:
                attention_mask = torch.ones_like(input_ids)
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            mode = self.pooling.mode
            if mode == "cls":
                pooled = hidden[:, 0]
            elif mode == "max":
                pooled = hidden.masked_fill(mask == 0, -1e9).max(dim=1).values
            else:
                summed = (hidden * mask).sum(dim=1)  # (B, H)
                count = mask.sum(dim=1).clamp(min=1e-9)  # (B, 1)
                pooled = summed / (count.sqrt() if mode == "mean_sqrt_len" else count)
            if self.pooling.normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=-1)
            return hidden, pooled  # (B, T, H), (B, H)

    return EncoderModule


@dataclass
class BuiltEncoder:
    module: Any
    tokenizer: Any
    config: Any
    input_names: list[str]
    output_names: list[str]
    pooling: Pooling | None
    max_length: int


def resolve_task(task: str, model_dir: Path) -> tuple[str, Pooling | None]:
    if task not in ("auto", "feature-extraction", "sentence-embedding"):
        raise InputError(
            f"unknown task '{task}' for a text encoder", "use auto, feature-extraction or sentence-embedding"
        )
    if task == "feature-extraction":
        return task, None
    pooling = read_pooling(model_dir)
    if pooling is None:
        if task == "sentence-embedding":
            raise InputError(
                f"'{model_dir}' is not a sentence-transformers folder (no modules.json with a Pooling module)",
                "use --task feature-extraction, or export a sentence-transformers model",
            )
        return "feature-extraction", None
    return "sentence-embedding", pooling


def build_encoder(model_dir: Path, spec: EncoderSpec, task: str) -> BuiltEncoder:
    """Load model and tokenizer from ``model_dir`` and wrap them for export (or as the reference)."""
    from edgekit.models.tokenizer import load_tokenizer

    model_dir = Path(model_dir)
    task, pooling = resolve_task(task, model_dir)
    model = load_encoder(model_dir, spec)
    tokenizer = load_tokenizer(model_dir, model.config)
    names = input_names_for(spec, tokenizer, model)
    module = _encoder_module_class()(model, pooling).eval()
    outputs = ["last_hidden_state"] + (["sentence_embedding"] if pooling else [])
    max_length = spec.max_positions(model.config)
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < max_length:
        max_length = tok_max
    return BuiltEncoder(module, tokenizer, model.config, names, outputs, pooling, max_length)


def dynamic_axes(input_names: list[str], output_names: list[str]) -> dict[str, dict[int, str]]:
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    for name in output_names:
        axes[name] = {0: "batch", 1: "sequence"} if name == "last_hidden_state" else {0: "batch"}
    return axes


# --- the kind protocol (edgekit/models/kinds.py) ---
TASKS = ENCODER_TASKS
model_types = supported_model_types
spec_for = encoder_spec_for


def claims(raw_config: dict) -> str | None:
    """Every model not claimed by another kind is tried as a text encoder (its task resolved from the folder)."""
    return "auto"


def build(model_dir: Path, spec: EncoderSpec, task: str) -> BuiltEncoder:
    return build_encoder(model_dir, spec, task)


def reference_io(built: BuiltEncoder, model_file: str | None = None):
    from edgekit.models.kinds import ReferenceIO

    return ReferenceIO(built.module, built.input_names, built.output_names)
