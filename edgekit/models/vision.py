"""Vision encoders (ViT, DeiT): ``pixel_values`` in, ``last_hidden_state`` (+ ``pooler_output``) out.

The same export path as text encoders -- dynamo export, validation against PyTorch, the same
targets and INT8 -- with images in place of text: the image size is fixed by the model's
position embeddings, the batch is dynamic, and the model's ``preprocessor_config.json`` says how
pictures become pixels (``edgekit.calibration.images``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.models.source import load_model
from edgekit.models.specs import by_model_type, lookup_spec

VISION_TASKS = ("image-feature-extraction",)


@dataclass(frozen=True)
class VisionSpec:
    family: str
    model_types: tuple[str, ...]
    atol: float = 1e-4
    attn_implementation: str | None = "eager"
    tasks: tuple[str, ...] = field(default=VISION_TASKS)


_VISION_SPECS: tuple[VisionSpec, ...] = (VisionSpec("vit", ("vit",)), VisionSpec("deit", ("deit",)))
_BY_TYPE = by_model_type(_VISION_SPECS)


def vision_model_types() -> list[str]:
    return sorted(_BY_TYPE)


def vision_spec_for(model_type: str | None) -> VisionSpec:
    return lookup_spec(_BY_TYPE, model_type, "vision export spec")


@dataclass
class BuiltVision:
    module: Any
    config: Any
    input_names: list[str]
    output_names: list[str]
    image_size: tuple[int, int]
    channels: int
    tokenizer: Any = None
    pooling: Any = None
    max_length: int = 0


def _module_class():
    import torch

    class VisionModule(torch.nn.Module):
        """Tuple outputs in a fixed order, so the ONNX graph and the reference agree by position."""

        def __init__(self, model, with_pooler: bool):
            super().__init__()
            self.model = model
            self.with_pooler = with_pooler

        def forward(self, pixel_values):
            out = self.model(pixel_values=pixel_values)
            if self.with_pooler:
                return out.last_hidden_state, out.pooler_output
            return (out.last_hidden_state,)

    return VisionModule


def build_vision(model_dir: Path, spec: VisionSpec) -> BuiltVision:
    model_dir = Path(model_dir)
    model = load_model(
        "AutoModel",
        model_dir,
        spec.attn_implementation,
        "the vision model",
        "the folder needs config.json and the weights",
    )
    with_pooler = getattr(model, "pooler", None) is not None
    size = model.config.image_size
    image_size = (size, size) if isinstance(size, int) else tuple(size)
    outputs = ["last_hidden_state"] + (["pooler_output"] if with_pooler else [])
    return BuiltVision(
        _module_class()(model, with_pooler).eval(),
        model.config,
        ["pixel_values"],
        outputs,
        image_size,
        int(model.config.num_channels),
    )


def vision_cases(built: BuiltVision, seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """Seeded pixel tensors in the normalised range: batch 1, and batch 3 with different images."""
    import numpy as np

    rng = np.random.default_rng(seed)
    h, w = built.image_size
    return [
        (f"batch{b}", {"pixel_values": rng.uniform(-1, 1, size=(b, built.channels, h, w)).astype(np.float32)})
        for b in (1, 3)
    ]


def vision_axes(output_names: list[str]) -> dict[str, dict[int, str]]:
    axes: dict[str, dict[int, str]] = {"pixel_values": {0: "batch"}}
    for name in output_names:
        axes[name] = {0: "batch"}
    return axes


# --- the kind protocol (edgekit/models/kinds.py) ---
TASKS = VISION_TASKS
model_types = vision_model_types
spec_for = vision_spec_for


def claims(raw_config: dict) -> str | None:
    return TASKS[0] if raw_config.get("model_type") in vision_model_types() else None


def build(model_dir: Path, spec: VisionSpec, task: str = TASKS[0]) -> BuiltVision:
    return build_vision(model_dir, spec)


def reference_io(built: BuiltVision, model_file: str | None = None):
    from edgekit.models.kinds import ReferenceIO

    return ReferenceIO(built.module, built.input_names, built.output_names, image_inputs=True)
