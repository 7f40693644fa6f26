"""``--target onnx``: the portable ONNX graph as converted and validated; INT8 of stateless graphs
as plain Q/DQ that any runtime reads."""

from __future__ import annotations

from typing import Any

from edgekit.export.targets import TargetBase


class OnnxTarget(TargetBase):
    name = "onnx"
    graph_precisions = ("fp32", "int8")
    decoder_precisions = ("fp32",)
    seq2seq_precisions = ("fp32",)
    fuse_int8 = False
    """INT8 in ONNX Runtime's fused form (MatMulIntegerToFloat) rather than plain Q/DQ."""

    def graph(self, job: Any, case: Any) -> tuple[dict, dict]:
        if job.cfg.precision == "fp32":
            return {}, case.validation
        from edgekit.compress.int8 import ort_int8

        section, quality = ort_int8(
            job.cfg, job.model_dir, case.built, case.reference, job.tmp, job.steps, fuse=self.fuse_int8
        )
        return section, {
            "runtime": "onnxruntime",
            "passed": True,
            "quality": quality,
            "fp32": case.validation,
        }

    def decoder(self, job: Any, case: Any) -> tuple[Any, dict, dict]:
        info, validation = case.standard_graph()
        return info, {}, validation


TARGET = OnnxTarget()
