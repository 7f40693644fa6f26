"""Export targets. Each names what the artifact folder will hold; only working targets are listed."""

from __future__ import annotations

from edgekit.errors import InputError, did_you_mean

TARGETS: dict[str, str] = {
    "onnx": "a portable ONNX graph (standard opset, dynamic batch and sequence), validated against PyTorch on ONNX Runtime",
}


def check_target(target: str) -> str:
    if target not in TARGETS:
        raise InputError(f"unknown export target '{target}'", did_you_mean(target, TARGETS))
    return target
