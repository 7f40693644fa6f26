"""Export targets, one file each, found through one registry: a name maps to ``module:object``.

A target applies itself to what a model kind built and validated. It serves three graph roles,
so a new kind that is made of them needs no change here:

- ``graph(job, case)``: a stateless graph already converted to ONNX and validated (encoders,
  vision encoders; next: each tower of a dual encoder, CTC speech encoders);
- ``decoder(job, case)``: a KV-cache decoder (the target picks how its graph is made);
- ``seq2seq(job, case)``: an encoder graph plus a decoder graph with caches.

Which precisions a target writes for each role is declared once, on the target (``TargetBase``).
Heavy modules are imported only when a target runs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from edgekit.errors import InputError, did_you_mean, require


@dataclass(frozen=True)
class TargetEntry:
    name: str
    target: str
    """``module:object`` of the target (a ``TargetBase``)."""
    description: str


_TARGETS: dict[str, TargetEntry] = {
    entry.name: entry
    for entry in (
        TargetEntry(
            "onnx",
            "edgekit.export.targets.onnx:TARGET",
            "a portable ONNX graph (standard opset, dynamic batch and sequence; INT8 as plain Q/DQ), validated against PyTorch on ONNX Runtime",
        ),
        TargetEntry(
            "ort",
            "edgekit.export.targets.ort:TARGET",
            "an ONNX graph for ONNX Runtime: fp32, or INT8 as Q/DQ (static, calibrated) or dynamic, validated on ONNX Runtime",
        ),
        TargetEntry(
            "trt",
            "edgekit.export.targets.tensorrt:TARGET",
            "a TensorRT-ready ONNX (fp16, or explicit int8 Q/DQ plus an implicit-INT8 calibration cache; KV-cache decoders in fp16 with decode and prefill profiles), optimization profiles and the build command; the engine is built when TensorRT and a GPU are present",
        ),
        TargetEntry(
            "openvino",
            "edgekit.export.targets.openvino:TARGET",
            "OpenVINO IR (.xml/.bin) converted from the validated ONNX graph, stateful for decoders, validated again on OpenVINO",
        ),
        TargetEntry(
            "android",
            "edgekit.export.targets.android:TARGET",
            "what a phone app loads: an ONNX Runtime Mobile .ort (with its reduced-build operator config) and an ExecuTorch .pte (XNNPACK), fp32 or INT8 from one calibration set, with the app's JSON and golden vectors; both checked on their runtimes here",
        ),
    )
}


def list_targets() -> list[TargetEntry]:
    return list(_TARGETS.values())


def get_target(name: str) -> "TargetBase":
    entry = _TARGETS.get(name)
    if entry is None:
        raise InputError(f"unknown export target '{name}'", did_you_mean(name, _TARGETS))
    module_name, attr = entry.target.split(":")
    return getattr(importlib.import_module(module_name), attr)


class TargetBase:
    """What every target declares, and the checks made from it. Subclasses override the roles they serve."""

    name = ""
    graph_precisions: tuple[str, ...] = ()
    """Stateless graphs (encoders, vision encoders)."""
    decoder_precisions: tuple[str, ...] = ()
    """KV-cache decoders."""
    seq2seq_precisions: tuple[str, ...] = ()
    """Encoder-decoders; empty: not served."""
    decoder_hint = "decoders take weight-only int8 or int4 with --target ort or openvino"
    takes_max_seq = False
    """Whether --max-seq-len (the longest sequence of the build profiles) applies."""
    measures_float_quality = False
    """Whether a float export measures its quality on --eval-data too (TensorRT fp16)."""
    fused_attention = False
    """Whether it reads a graph whose attention is ONNX Runtime's fused GroupQueryAttention."""
    requires_modules: tuple[tuple[str, str, str], ...] = ()
    """(module, what needs it, pip extra) beyond what every export needs."""

    @property
    def precisions(self) -> tuple[str, ...]:
        """Every precision the target writes, in the order of the roles."""
        seen: dict[str, None] = {}
        for p in self.graph_precisions + self.decoder_precisions + self.seq2seq_precisions:
            seen.setdefault(p, None)
        return tuple(seen)

    def check_precision(self, precision: str) -> str:
        if precision not in self.precisions:
            raise InputError(
                f"--precision {precision} is not available for --target {self.name}",
                f"use one of {', '.join(self.precisions)}",
            )
        return precision

    def check_options(self, cfg: Any) -> None:
        if cfg.max_seq is not None and (cfg.max_seq < 2 or not self.takes_max_seq):
            problem = "must be at least 2" if cfg.max_seq < 2 else "applies only to --target trt and android"
            raise InputError(
                f"--max-seq-len {cfg.max_seq} {problem}",
                "pass e.g. --max-seq-len 1024 with --target trt or android, or drop it",
            )

    def require(self, cfg: Any) -> None:
        """Fail with the pip extra to install when a module the export needs is missing."""
        require("torch", "export", "torch")
        require("onnx", "export", "torch")
        require("onnxruntime", "validating an export", "ort")
        for module, what, extra in self.requires_modules:
            require(module, what, extra)

    def reuses(self, prior: dict) -> bool:
        """Whether the graph of the prior ONNX artifact ``prior`` can be taken as it is."""
        return self.fused_attention or prior["export"].get("attention") != "GroupQueryAttention"

    def graph(self, job: Any, case: Any) -> tuple[dict, dict]:
        return {}, case.validation

    def decoder(self, job: Any, case: Any) -> tuple[Any, dict]:
        raise InputError(f"--target {self.name} does not take KV-cache decoders", self.decoder_hint)

    def seq2seq(self, job: Any, case: Any) -> tuple[dict, dict]:
        return {}, case.validation
