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
    precision: str | None = None
    """fp32; fp16 (openvino weights); int8 (static, calibrated) or int8-dynamic (ort); int8/int4
    weight-only (decoders); gguf (a GGUF's own blocks, ort). None: gguf for a GGUF on ort, else fp32."""
    opset: int = DEFAULT_OPSET
    exporter: str = "auto"
    """``auto`` (torch.export-based ``dynamo``, falling back to ``torchscript`` if it fails), ``dynamo`` or ``torchscript``."""
    atol: float | None = None
    """Max absolute difference allowed against PyTorch; ``None`` uses the architecture's default (1e-4 for fp32)."""
    seed: int = 0
    overwrite: bool = False
    calib: Path | None = None
    """INT8 calibration data: a .txt/.jsonl file or a folder of .txt files or images."""
    calib_text: Path | None = None
    """Image-text models, INT8: texts for the text tower (``calib`` holds the vision tower's images)."""
    calib_size: int = 128
    calib_method: str = "percentile"
    """``minmax``, ``entropy`` or ``percentile`` (ranges for ONNX Runtime and TensorRT Q/DQ)."""
    percentile: float = 99.999
    smooth_alpha: float = 0.8
    """SmoothQuant migration strength for static INT8 on ONNX graphs (0 turns it off)."""
    seq_lens: tuple[int, ...] = (128,)
    """Sequence lengths the model will run at; calibration text is padded to each."""
    max_drop: float | None = None
    """Accuracy guard: the largest quality drop allowed against fp32 (1 - mean cosine, or accuracy)."""
    eval_data: Path | None = None
    """Held-out data for the accuracy guard (texts; a ``label`` field in .jsonl gives labels)."""
    max_batch: int = 16
    """TensorRT: the largest batch of the optimization profiles."""
    max_seq: int | None = None
    """TensorRT: the longest sequence of the optimization profiles (decoders: prompt + generated
    tokens); None: the model's maximum for encoders, min(model's maximum, 2048) for decoders."""
    max_float_nodes: int = 16
    """The accuracy guard keeps at most this many quantizable nodes in float before giving up."""
    encoding: str | None = None
    """Encoding of --calib / --eval-data text files; None = UTF-8, strictly (undecodable bytes are refused)."""
    gqa: bool = True
    """--target ort, llama-style decoders: export each attention as ONNX Runtime's fused
    GroupQueryAttention (positions from the mask: unpadded or right-padded rows). False keeps the
    standard graph that any runtime reads."""
