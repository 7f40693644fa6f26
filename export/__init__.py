"""Export: a trained model folder in, a validated artifact folder out."""

from edgekit.export.api import export_model
from edgekit.export.config import ExportConfig

EXPORT_REVISION = 6
"""Bumped whenever what ``export`` writes changes (2: ONNX Runtime decoders with GroupQueryAttention;
3: OpenVINO decoders converted from PyTorch with SDPA and a beam_idx cache reorder; 4: ONNX Runtime
decoders with fused RMSNorm and packed QKV projections; 5: ONNX Runtime weight-only int4 with a
zero point per block; 6: ONNX Runtime decoders with merged gate/up projections);
part of the key of cached exports (edgekit/assets.py), so a stale cache is never reused."""

__all__ = ["EXPORT_REVISION", "ExportConfig", "export_model"]
