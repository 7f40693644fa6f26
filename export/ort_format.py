"""ONNX Runtime's own model format (``.ort``), what ONNX Runtime Mobile loads, and the operator
config a reduced ONNX Runtime build is made from.

The graph is optimized once, here, at the level ONNX Runtime Mobile applies (every graph
optimization but the x86-only NCHWc layout), and saved in the ORT format; int8 Q/DQ pairs are
allowed to become int8 kernels (what ARM CPUs run fast). The operator config lists each domain's
operators the saved graph uses, in the form ``tools/ci_build/build.py --include_ops_by_config``
reads.
"""

from __future__ import annotations

import logging
from pathlib import Path

ORT_FORMAT_OPTIMIZATION = "all, without NchwcTransformer (x86-only layout)"


def onnx_to_ort(src: Path, dst: Path) -> dict:
    """Write ``dst`` (.ort) from the ONNX graph ``src`` and ``<dst stem>.required_operators.config``
    beside it; returns the manifest section."""
    import onnxruntime as ort
    from onnxruntime.tools.ort_format_model import create_config_from_models

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(dst)
    so.add_session_config_entry("session.save_model_format", "ORT")
    so.add_session_config_entry("session.qdqisint8allowed", "1")
    so.log_severity_level = 3
    ort.InferenceSession(
        str(src), so, providers=["CPUExecutionProvider"], disabled_optimizers=["NchwcTransformer"]
    )
    config = dst.with_name(dst.stem + ".required_operators.config")
    tool_log = logging.getLogger("ort_format_model.utils")
    level = tool_log.level
    tool_log.setLevel(logging.WARNING)  # it announces the file it wrote at INFO
    try:
        create_config_from_models([dst], config, enable_type_reduction=False)
    finally:
        tool_log.setLevel(level)
    return {
        "ort_model_file": dst.name,
        "ort_operators_config": config.name,
        "ort_optimization": ORT_FORMAT_OPTIMIZATION,
        "onnxruntime_version": ort.__version__,
    }


def required_operators(config: Path) -> dict[str, list[str]]:
    """The operator config as ``{"domain;opset": [operators]}`` (comment lines dropped)."""
    ops: dict[str, list[str]] = {}
    for line in config.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            domain, opset, names = line.split(";")
            ops[f"{domain};{opset}"] = names.split(",")
    return ops
