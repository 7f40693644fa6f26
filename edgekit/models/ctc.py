"""CTC speech encoders (wav2vec2, HuBERT, WavLM): raw 16 kHz samples in, per-frame letter logits out.

    model.onnx
      input_values   [batch, samples]  float32, normalised as the model's feature extractor says
      attention_mask [batch, samples]  int64   (only models whose feature encoder uses layer norm)
          └─> logits [batch, frames, vocab]    frames = samples / (product of the conv strides), about 50 per second

One stateless graph with a dynamic number of samples, exported, validated and quantized like any
other (INT8 from WAV calibration files, or dynamic INT8). A transcript is the greedy CTC path:
the best letter per frame, repeats merged, the blank (the tokenizer's pad token) dropped, and the
tokenizer's word delimiter read as a space (``edgekit.runtimes.ctc``).

Whether the graph takes ``attention_mask`` follows transformers: models whose feature encoder
uses group norm (wav2vec2-base, HuBERT-base) were trained on zero-padded audio without a mask and
read worse with one, so only the layer-norm models take it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import InputError
from edgekit.models.source import load_model
from edgekit.models.specs import by_model_type, lookup_spec

CTC_TASKS = ("automatic-speech-recognition",)


@dataclass(frozen=True)
class CtcSpec:
    family: str
    model_types: tuple[str, ...]
    atol: float = 1e-4
    attn_implementation: str | None = "eager"


_SPECS: tuple[CtcSpec, ...] = (
    CtcSpec("wav2vec2", ("wav2vec2",)),
    CtcSpec("hubert", ("hubert",)),
    CtcSpec("wavlm", ("wavlm",)),
)
_BY_TYPE = by_model_type(_SPECS)


def ctc_model_types() -> list[str]:
    return sorted(_BY_TYPE)


def ctc_spec_for(model_type: str | None) -> CtcSpec:
    return lookup_spec(_BY_TYPE, model_type, "CTC speech export spec")


@dataclass
class BuiltCtc:
    module: Any
    config: Any
    input_names: list[str]
    output_names: list[str]
    tokenizer: Any
    sampling_rate: int
    frame_samples: int
    """Input samples per output frame (the product of the feature encoder's strides)."""
    pooling: Any = None
    max_length: int = 0
    quantize_convs = True
    """Static INT8 takes the feature encoder's convolutions too (a third of wav2vec2-base's MACs)."""

    @property
    def takes_mask(self) -> bool:
        return "attention_mask" in self.input_names

    @property
    def blank_token_id(self) -> int:
        """The CTC blank: the tokenizer's pad token (how wav2vec2 fine-tuning sets it), else the config's."""
        token = getattr(self.tokenizer, "pad_token_id", None)
        if token is None:
            token = getattr(self.config, "pad_token_id", None)
        return int(token or 0)


def _module_class():
    import torch

    class CtcModule(torch.nn.Module):
        def __init__(self, model, takes_mask: bool):
            super().__init__()
            self.model, self.takes_mask = model, takes_mask

        def forward(self, input_values, attention_mask=None):
            if self.takes_mask:
                return (self.model(input_values=input_values, attention_mask=attention_mask).logits,)
            return (self.model(input_values=input_values).logits,)

    return CtcModule


def uses_mask(config: Any) -> bool:
    """transformers' rule: only a layer-norm feature encoder is given the attention mask."""
    return getattr(config, "feat_extract_norm", "group") == "layer"


def build_ctc(model_dir: Path, spec: CtcSpec) -> BuiltCtc:
    import math

    from edgekit.audio import sampling_rate
    from edgekit.models.tokenizer import load_tokenizer

    model_dir = Path(model_dir)
    check_ctc_head(model_dir)
    model = load_model(
        "AutoModelForCTC",
        model_dir,
        spec.attn_implementation,
        "the CTC speech model",
        "the folder needs config.json and the weights of a *ForCTC model",
    )
    fold_weight_norm(model)
    takes_mask = uses_mask(model.config)
    return BuiltCtc(
        _module_class()(model, takes_mask).eval(),
        model.config,
        ["input_values"] + (["attention_mask"] if takes_mask else []),
        ["logits"],
        load_tokenizer(model_dir, model.config),
        sampling_rate(model_dir),
        int(math.prod(model.config.conv_stride)),
    )


def fold_weight_norm(model: Any) -> int:
    """Replace weight-normalised weights (the positional convolution's) by the weight they compute,
    the same numbers: the graph then holds one constant weight, which the runtimes fold and the
    quantizers see, instead of recomputing it from its norm and direction on every run."""
    from torch.nn.utils import parametrize

    folded = 0
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            folded += 1
    return folded


def check_ctc_head(model_dir: Path) -> None:
    """A pretrained speech encoder without a CTC head would load with a random one: refused."""
    from edgekit.artifacts import read_json

    architectures = read_json(Path(model_dir) / "config.json", "fix the file").get("architectures") or []
    if architectures and not any(str(a).endswith("ForCTC") for a in architectures):
        raise InputError(
            f"'{model_dir}' is a {', '.join(architectures)}, not a model fine-tuned for CTC (a *ForCTC head)",
            "export a CTC fine-tuned checkpoint (e.g. a wav2vec2 '-960h' model)",
        )


def ctc_cases(built: BuiltCtc, seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """Seeded waveforms (a sum of tones under noise, normalised): 1 s and 2.3 s alone, and a batch of
    two where (for models that take a mask) the second is half padding."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rate = built.sampling_rate

    def wave(n: int) -> np.ndarray:
        t = np.arange(n) / rate
        tones = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) for f in rng.uniform(100, 3000, 4))
        x = tones + 0.3 * rng.standard_normal(n)
        return ((x - x.mean()) / (x.std() + 1e-7)).astype(np.float32)

    cases = []
    for name, rows, n in (("1s", 1, rate), ("2.3s", 1, int(2.3 * rate)), ("batch2", 2, rate // 2)):
        values = np.stack([wave(n) for _ in range(rows)])
        feed = {"input_values": values}
        if built.takes_mask:
            mask = np.ones_like(values, dtype=np.int64)
            if rows == 2:
                mask[1, n // 2 :] = 0
                values[1, n // 2 :] = 0.0
            feed["attention_mask"] = mask
        cases.append((name, feed))
    return cases


def ctc_axes(input_names: list[str]) -> dict[str, dict[int, str]]:
    axes = {name: {0: "batch", 1: "samples"} for name in input_names}
    axes["logits"] = {0: "batch", 1: "frames"}
    return axes


# --- the kind protocol (edgekit/models/kinds.py) ---
TASKS = CTC_TASKS
model_types = ctc_model_types
spec_for = ctc_spec_for


def claims(raw_config: dict) -> str | None:
    return TASKS[0] if raw_config.get("model_type") in ctc_model_types() else None


def build(model_dir: Path, spec: CtcSpec, task: str = TASKS[0]) -> BuiltCtc:
    return build_ctc(model_dir, spec)


def reference_io(built: BuiltCtc, model_file: str | None = None):
    from edgekit.models.kinds import ReferenceIO

    specs = {
        "input_values": (("batch", "samples"), "float32"),
        "attention_mask": (("batch", "samples"), "int64"),
    }
    return ReferenceIO(
        built.module,
        built.input_names,
        built.output_names,
        input_specs={n: specs[n] for n in built.input_names},
    )


def greedy_ids(logits: Any, blank: int) -> list[int]:
    """The greedy CTC path of one utterance's ``logits`` [frames, vocab]: the best token per frame,
    repeats merged, blanks dropped."""
    import numpy as np

    best = np.asarray(logits).argmax(-1)
    keep = np.ones(len(best), dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    return [int(t) for t in best[keep] if t != blank]


def transcript(tokenizer: Any, logits: Any, blank: int) -> str:
    """The text of the greedy path of ``logits`` [frames, vocab]. A wav2vec2 CTC tokenizer decodes
    the best token of every frame itself, as transformers' speech pipeline does (repeats merged,
    blanks dropped, the word delimiter read as a space, other special tokens skipped); any other
    tokenizer decodes the merged path of ``greedy_ids``."""
    import numpy as np

    if hasattr(tokenizer, "word_delimiter_token"):
        best = [int(t) for t in np.asarray(logits).argmax(-1)]
        return tokenizer.decode(best, skip_special_tokens=True).strip()
    return tokenizer.decode(greedy_ids(logits, blank), skip_special_tokens=True).strip()


def load_extractor(folder: Path) -> Any:
    """The folder's feature extractor (how samples are normalised), or one line naming the missing file."""
    from transformers import AutoFeatureExtractor

    if not (Path(folder) / "preprocessor_config.json").is_file():
        raise InputError(
            f"'{folder}' has no preprocessor_config.json, so edgekit cannot prepare audio for it",
            "copy the model's preprocessor_config.json into the folder (and export again)",
        )
    return AutoFeatureExtractor.from_pretrained(str(folder))


def audio_inputs(extractor: Any, samples: Any, input_names: list[str]) -> dict[str, Any]:
    """Feeds for one utterance (batch 1): the samples normalised as the model was trained on."""
    import numpy as np

    values = extractor(samples, sampling_rate=int(extractor.sampling_rate), return_tensors="np")[
        "input_values"
    ]
    feed = {"input_values": np.ascontiguousarray(values, dtype=np.float32)}
    if "attention_mask" in input_names:
        feed["attention_mask"] = np.ones(values.shape, dtype=np.int64)
    return feed
