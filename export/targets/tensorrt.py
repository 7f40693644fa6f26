"""``--target trt``: a TensorRT-ready folder (fp16 ONNX, or explicit int8 Q/DQ plus the implicit-INT8
calibration cache; KV-cache decoders in fp16 with decode and prefill profiles), its optimization
profiles and build commands, and the engine itself when TensorRT and a GPU are here. The graph
work is in export/tensorrt.py; this file is the target's part of the pipeline."""

from __future__ import annotations

from typing import Any

from edgekit.export.targets import TargetBase


class TensorRTTarget(TargetBase):
    name = "trt"
    graph_precisions = ("fp16", "int8")
    decoder_precisions = ("fp16",)
    seq2seq_precisions = ("fp16",)
    decoder_hint = "use --precision fp16 for TensorRT, or weight-only int8/int4 with --target ort or openvino"
    takes_max_seq = True
    measures_float_quality = True

    def graph(self, job: Any, case: Any) -> tuple[dict, dict]:
        from edgekit.export.tensorrt import trt_export

        section, quality = trt_export(
            job.cfg, job.model_dir, case.built, case.reference, job.tmp, job.steps, case.io["inputs"]
        )
        return section, {
            "runtime": "onnxruntime",
            "passed": True,
            "quality": quality,
            "fp32": case.validation,
        }

    def decoder(self, job: Any, case: Any) -> tuple[Any, dict, dict]:
        from edgekit.export.tensorrt import trt_decoder_export

        info, validation = case.standard_graph()
        inputs = case.io_section()["inputs"]
        section, validation = trt_decoder_export(
            job.cfg, case.built, case.reference, job.tmp, job.steps, inputs, case.prompts, validation
        )
        return info, section, validation

    def seq2seq(self, job: Any, case: Any) -> tuple[dict, dict]:
        from edgekit.export.tensorrt_seq2seq import trt_seq2seq_export

        return trt_seq2seq_export(job, case)


TARGET = TensorRTTarget()
