"""``--target ort``: a graph for ONNX Runtime itself. Stateless graphs: INT8 in the fused form
(static or dynamic). Llama-style decoders: each attention as one ``GroupQueryAttention`` node
(export/gqa.py). Decoders and encoder-decoders: weight-only int8/int4 as ``MatMulNBits``."""

from __future__ import annotations

import logging
from typing import Any

from edgekit.export.options import WEIGHT_ONLY
from edgekit.export.targets.onnx import OnnxTarget

log = logging.getLogger("edgekit.export")


class OrtTarget(OnnxTarget):
    name = "ort"
    graph_precisions = ("fp32", "int8", "int8-dynamic")
    decoder_precisions = ("fp32", "int8", "int4", "gguf")
    seq2seq_precisions = ("fp32", "int8", "int4")
    fuse_int8 = True
    fused_attention = True

    def decoder(self, job: Any, case: Any) -> tuple[Any, dict, dict]:
        import dataclasses

        from edgekit.export.gqa import gqa_attention, usable
        from edgekit.export.ort_fusions import fuse_decoder

        context = None
        if job.cfg.gqa:
            if job.prior is not None and job.prior["export"].get("attention") == "GroupQueryAttention":
                case.attention = (
                    "GroupQueryAttention"  # that artifact's graph is already the ORT one: reuse it
                )
                case.io = dataclasses.replace(
                    case.io, uses_position_ids=job.prior["export"]["cache"]["uses_position_ids"]
                )
            elif usable(case.built.model):
                case.attention = "GroupQueryAttention"  # an ORT graph of its own, exported from the source
                job = case.job = job.replace(prior=None)
                context = gqa_attention(case.built.module, case.built.max_length)
            else:
                log.info(
                    "%s: attention stays unfused (GroupQueryAttention covers llama-style layers with full rotary)",
                    job.spec.family,
                )
        info, validation = case.standard_graph(context, rewrite=fuse_decoder if context is not None else None)
        extra = {}
        if job.cfg.precision == "gguf":
            quant, sessions, extra = self.gguf_blocks(job, case)
        elif job.cfg.precision in WEIGHT_ONLY:
            quant, sessions = self.weight_only(job, {"model": "model.onnx"})
        else:
            return info, {}, validation
        generation = case.weight_only_parity(sessions["model"], job.cfg.precision)
        return (
            info,
            {"quantization": quant["model"]},
            {
                "runtime": "onnxruntime",
                "passed": True,
                "greedy_generation": generation,
                "fp32": validation,
                **extra,
            },
        )

    def gguf_blocks(self, job: Any, case: Any) -> tuple[dict, dict, dict]:
        """The validated fp32 graph with the GGUF file's own Q4_0/Q4_1/Q8_0 blocks in place of its
        weights (compress/gguf_blocks.py). The blocks are checked exactly first: the same graph with
        float compute (accuracy level 0) must pass the fp32 validation against PyTorch (which runs
        the GGUF's dequantized weights); the artifact's graph is that one at ``GGUF_ACCURACY_LEVEL``."""
        from edgekit.compress.gguf_blocks import GGUF_ACCURACY_LEVEL, ort_from_gguf
        from edgekit.runtimes.base import SessionOptions
        from edgekit.runtimes.ort_backend import OrtSession

        src, exact, out = (job.tmp / n for n in ("model.fp32.onnx", "model.exact.onnx", "model.onnx"))
        with job.steps.step("put the GGUF's blocks back"):
            out.rename(src)  # its external data file (large models) keeps its name; loaded before rewriting
            quant = ort_from_gguf(src, out, job.gguf_file, GGUF_ACCURACY_LEVEL, exact_out=exact)
            src.unlink()
        with job.steps.step("validate the blocks against PyTorch"):
            _, report = case.validate_onnx(exact)
            for path in (exact, exact.with_name(exact.name + ".data")):
                path.unlink()
        if quant["float_matmuls"]:
            log.warning(
                "%d MatMul(s) kept float: their weights are no Q4_0/Q4_1/Q8_0 tensor of %s (other GGUF types have no exact MatMulNBits form yet)",
                quant["float_matmuls"],
                job.gguf_file.name,
            )
        exact_check = {"accuracy_level": 0, **report.as_dict()}
        return (
            {"model": quant},
            {"model": OrtSession(out, SessionOptions())},
            {"gguf_blocks_exact": exact_check},
        )

    def seq2seq(self, job: Any, case: Any) -> tuple[dict, dict]:
        if job.cfg.precision not in WEIGHT_ONLY:
            return {}, case.validation
        calib = case.encoder_calibration()
        if calib is None:
            quant, sessions = self.weight_only(job, case.files)
        else:  # a captioner: a static INT8 vision encoder, a weight-only decoder
            encoder = self.static_encoder(job, case.files["encoder"], calib)
            quant, sessions = self.weight_only(job, {"decoder": case.files["decoder"]})
            quant = {"encoder": encoder, **quant}
            sessions = {"encoder": self.session(job.tmp / case.files["encoder"]), **sessions}
        generation = case.weight_only_parity(sessions, job.cfg.precision)
        return {"quantization": quant}, {
            "runtime": "onnxruntime",
            "passed": True,
            "greedy_generation": generation,
            "fp32": case.validation,
        }

    def static_encoder(self, job: Any, name: str, calib: Any) -> dict:
        """Static INT8 of the validated encoder graph ``tmp/name``, in place, calibrated on ``calib``."""
        from edgekit.calibration.ranges import RangeMethod
        from edgekit.compress.int8 import ort_static_encoder

        cfg = job.cfg
        method = RangeMethod(cfg.calib_method, cfg.percentile)
        src = job.tmp / "encoder.fp32.onnx"
        (job.tmp / name).rename(src)
        passes = len(calib.feeds) * (2 if method.needs_histogram else 1)
        with job.steps.step(
            f"static INT8 encoder ({method.name}, {len(calib.feeds)} images)", passes
        ) as advance:
            quant = ort_static_encoder(src, job.tmp / name, calib, method, self.fuse_int8, advance)
        src.unlink()
        return quant

    @staticmethod
    def session(path: Any) -> Any:
        from edgekit.runtimes.base import SessionOptions
        from edgekit.runtimes.ort_backend import OrtSession

        return OrtSession(path, SessionOptions())

    def weight_only(self, job: Any, files: dict[str, str]) -> tuple[dict[str, dict], dict[str, Any]]:
        """Weight-only int8/int4 (MatMulNBits) of each validated graph in ``tmp``, in place; their sessions."""
        from edgekit.compress.weight_only import ort_weight_only
        from edgekit.runtimes.base import SessionOptions
        from edgekit.runtimes.ort_backend import OrtSession

        quant = {}
        with job.steps.step(f"weight-only {job.cfg.precision}"):
            for part, name in files.items():
                src = job.tmp / f"{part}.fp32.onnx"
                (job.tmp / name).rename(src)
                quant[part] = ort_weight_only(src, job.tmp / name, job.cfg.precision)
                src.unlink()
        return quant, {part: OrtSession(job.tmp / name, SessionOptions()) for part, name in files.items()}


TARGET = OrtTarget()
