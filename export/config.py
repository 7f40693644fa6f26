"""The export stage's configuration: one frozen dataclass, filled by the CLI or by Python."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_OPSET = 20  # ONNX Gelu (opset 20) lets ONNX Runtime fuse BiasGelu; OpenVINO and TensorRT 10 read it


@dataclass(frozen=True)
class ExportConfig:
    model: Path
    """A Hugging Face model folder (config.json, weights, tokenizer)."""
    out: Path
    """The artifact folder to write (must not exist unless ``overwrite``)."""
    target: str = "onnx"
    task: str = "auto"
    """``auto``, ``feature-extraction`` (last_hidden_state) or ``sentence-embedding`` (+ pooled)."""
    precision: str = "fp32"
    """Weights precision: fp32; fp16 for the openvino target (OpenVINO still computes in f32)."""
    opset: int = DEFAULT_OPSET
    exporter: str = "auto"
    """``auto`` (torch.export-based ``dynamo``, falling back to ``torchscript`` if it fails), ``dynamo`` or ``torchscript``."""
    atol: float | None = None
    """Max absolute difference allowed against PyTorch; ``None`` uses the architecture's default (1e-4 for fp32)."""
    seed: int = 0
    overwrite: bool = False
