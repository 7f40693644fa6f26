"""Export targets. Each names what the artifact folder will hold; only working targets are listed."""

from __future__ import annotations

from edgekit.errors import InputError, did_you_mean

TARGETS: dict[str, str] = {
    "onnx": "a portable ONNX graph (standard opset, dynamic batch and sequence; INT8 as plain Q/DQ), validated against PyTorch on ONNX Runtime",
    "ort": "an ONNX graph for ONNX Runtime: fp32, or INT8 as Q/DQ (static, calibrated) or dynamic, validated on ONNX Runtime",
    "trt": "a TensorRT-ready ONNX (fp16, or explicit int8 Q/DQ plus an implicit-INT8 calibration cache; KV-cache decoders in fp16 with decode and prefill profiles), optimization profiles and the build command; the engine is built when TensorRT and a GPU are present",
    "openvino": "OpenVINO IR (.xml/.bin) converted from the validated ONNX graph, stateful for decoders, validated again on OpenVINO",
}

# precisions each target can write (weights); runtime precision stays f32 unless asked otherwise
PRECISIONS: dict[str, tuple[str, ...]] = {"onnx": ("fp32", "int8"), "ort": ("fp32", "int8", "int8-dynamic", "int4"), "openvino": ("fp32", "fp16", "int8", "int4"), "trt": ("fp16", "int8")}
NEEDS_CALIBRATION = ("int8",)
WEIGHT_ONLY = ("int8", "int4")
"""What --precision means for a KV-cache decoder: weight-only quantization (decode is memory-bound)."""


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise InputError(f"unknown export target '{target}'", did_you_mean(target, TARGETS))
    return target


def check_precision(target: str, precision: str) -> str:
    allowed = PRECISIONS[target]
    if precision not in allowed:
        raise InputError(f"--precision {precision} is not available for --target {target}", f"use one of {', '.join(allowed)}")
    return precision
