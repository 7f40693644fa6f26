"""Causal decoders with a KV cache: one graph for the first step (empty past) and every later step.

    input_ids                 [batch, sequence]          ─┐
    attention_mask            [batch, total_sequence]    ─┤
    position_ids              [batch, sequence]          ─┤   (families that use them)
    past_key_values.{i}.key   [batch, kv_heads, past_sequence, head_dim] ─┼─> CausalLM ─> logits [batch, sequence, vocab]
    past_key_values.{i}.value [batch, kv_heads, past_sequence, head_dim] ─┘         └──> present.{i}.key / .value
                                                                                          [batch, kv_heads, total_sequence, head_dim]

total_sequence = past_sequence + sequence. The flat past tensors are rebuilt into a DynamicCache
inside the exported module, so the model's own attention code (GQA included) is what is traced.
The names and layout are the ones Hugging Face's ONNX tooling uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.models.cache_io import DecoderIO
from edgekit.models.source import load_weights
from edgekit.models.specs import (
    DECODER_TASKS,
    DecoderSpec,
    claims_decoder,
    decoder_model_types,
    decoder_spec_for,
)


def cache_layout(config, uses_position_ids: bool) -> DecoderIO:
    """The cache layout of a transformers config, as the generation loop reads it from the manifest."""
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return DecoderIO(config.num_hidden_layers, kv_heads, head_dim, uses_position_ids)


def seed_cache(cache, past) -> None:
    """Fill the layers of a transformers cache with flat (key, value, key, value, ...) tensors as they
    are; update() would first concat onto an empty 1-D tensor, which OpenVINO's converter rejects."""
    for i in range(len(past) // 2):
        key, value, layer = past[2 * i], past[2 * i + 1], cache.layers[i]
        layer.lazy_initialization(key, value)
        layer.keys, layer.values = key, value


def full_length_cache(config):
    """A DynamicCache whose every layer keeps all past tokens. Sliding-window layers (Gemma3,
    Mistral) would otherwise crop their cache to the window, a data-dependent length that
    torch.export cannot trace; kept whole, the model's sliding-window mask still limits what each
    layer attends to, so the outputs are the same and only the cache is longer than it must be."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    cache = DynamicCache(config=config)
    if any(getattr(layer, "is_sliding", False) for layer in cache.layers):
        cache.layers = [DynamicLayer() for _ in cache.layers]
    return cache


def flat_cache(cache) -> list:
    """The layers of a transformers cache as flat (key, value, key, value, ...) tensors."""
    flat = []
    for layer in cache.layers:
        flat += [layer.keys, layer.values]  # (B, heads, sequence, head_dim) each
    return flat


def _decoder_module_class():
    import torch

    class DecoderWithPast(torch.nn.Module):
        """Flat past tensors in, logits and flat present tensors out."""

        def __init__(self, model, layout: DecoderIO):
            super().__init__()
            self.model = model
            self.layout = layout

        def forward(self, input_ids, attention_mask, position_ids=None, past=()):
            cache = full_length_cache(self.model.config)
            seed_cache(cache, past)
            kwargs = {
                "input_ids": input_ids,
                "attention_mask": attention_mask,
                "past_key_values": cache,
                "use_cache": True,
            }
            if self.layout.uses_position_ids:
                kwargs["position_ids"] = position_ids
            out = self.model(**kwargs)
            return (out.logits, *flat_cache(out.past_key_values))

    return DecoderWithPast


@dataclass
class BuiltDecoder:
    module: Any
    model: Any
    tokenizer: Any
    config: Any
    layout: DecoderIO
    input_names: list[str]
    output_names: list[str]
    max_length: int

    @property
    def uses_position_ids(self) -> bool:
        return self.layout.uses_position_ids


def load_generator(
    model_dir: Path,
    model_class: str,
    attn_implementation: str | None,
    with_tokenizer: bool = True,
    tokenizer_needed_for: str | None = None,
):
    """(tokenizer or None, fp32 model in eval mode) of an HF folder, loaded with
    ``transformers.<model_class>``; without tokenizer files the tokenizer is a SeededTokenizer
    unless ``tokenizer_needed_for`` says what needs a real one (see ``models/tokenizer.py``)."""
    import torch
    import transformers
    from transformers.utils import logging as hf_logging

    from edgekit.models.tokenizer import has_tokenizer, load_tokenizer, missing_tokenizer

    hf_logging.disable_progress_bar()
    if with_tokenizer and tokenizer_needed_for and not has_tokenizer(model_dir):
        raise missing_tokenizer(model_dir, tokenizer_needed_for)  # before the weights load
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    model = load_weights(
        lambda: getattr(transformers, model_class).from_pretrained(str(model_dir), **kwargs), model_dir
    )
    tokenizer = load_tokenizer(model_dir, model.config, tokenizer_needed_for) if with_tokenizer else None
    return tokenizer, model.eval()


def build_decoder(model_dir: Path, spec: DecoderSpec) -> BuiltDecoder:
    tokenizer, model = load_generator(model_dir, "AutoModelForCausalLM", spec.attn_implementation)
    layout = cache_layout(model.config, spec.uses_position_ids)
    module = _decoder_module_class()(model, layout).eval()
    inputs = (
        ["input_ids", "attention_mask"]
        + (["position_ids"] if spec.uses_position_ids else [])
        + layout.past_names()
    )
    outputs = ["logits"] + layout.present_names()
    max_length = int(
        getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", 2048)
    )
    return BuiltDecoder(module, model, tokenizer, model.config, layout, inputs, outputs, max_length)


def example_kwargs(built: BuiltDecoder) -> dict[str, Any]:
    """Batch 2, 3 past tokens, 4 new tokens: sizes >= 2 so the exporter keeps every axis dynamic."""
    import torch

    batch, past_len, new_len = 2, 3, 4
    lay = built.layout
    generator = torch.Generator().manual_seed(0)
    past = [
        torch.randn(batch, lay.kv_heads, past_len, lay.head_dim, generator=generator)
        for _ in lay.past_names()
    ]
    # The exporter names graph inputs in the order of these keys: keep it equal to input_names.
    kwargs: dict[str, Any] = {
        "input_ids": torch.randint(0, int(built.config.vocab_size), (batch, new_len), generator=generator),
        "attention_mask": torch.ones(batch, past_len + new_len, dtype=torch.long),
    }
    if built.uses_position_ids:
        kwargs["position_ids"] = (
            torch.arange(past_len, past_len + new_len).expand(batch, new_len).contiguous()
        )
    kwargs["past"] = past
    return kwargs


def dynamic_shapes(built: BuiltDecoder) -> tuple[dict, dict[str, dict[int, str]]]:
    """torch.export dynamic_shapes for the example kwargs, and the axis names for the ONNX graph."""
    import torch

    dyn = torch.export.Dim.DYNAMIC
    shapes: dict[str, Any] = {
        "input_ids": {0: dyn, 1: dyn},
        "attention_mask": {0: dyn, 1: dyn},
        "past": [{0: dyn, 2: dyn} for _ in built.layout.past_names()],
    }
    names: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "total_sequence"},
        "logits": {0: "batch", 1: "sequence"},
    }
    if built.uses_position_ids:
        shapes["position_ids"] = {0: dyn, 1: dyn}
        names["position_ids"] = {0: "batch", 1: "sequence"}
    for name in built.layout.past_names():
        names[name] = {0: "batch", 2: "past_sequence"}
    for name in built.layout.present_names():
        names[name] = {0: "batch", 2: "total_sequence"}
    return shapes, names


# --- the kind protocol (edgekit/models/kinds.py) ---
TASKS = DECODER_TASKS
model_types = decoder_model_types
spec_for = decoder_spec_for


def claims(raw_config: dict) -> str | None:
    return TASKS[0] if claims_decoder(raw_config) else None


def build(model_dir: Path, spec: DecoderSpec, task: str = TASKS[0]) -> BuiltDecoder:
    return build_decoder(model_dir, spec)


def reference_io(built: BuiltDecoder, model_file: str | None = None):
    from edgekit.models.kinds import ReferenceIO

    return ReferenceIO(
        built.module, built.input_names, built.output_names, past_names=built.layout.past_names()
    )
