"""``--target openvino``: OpenVINO IR (.xml/.bin), validated again on OpenVINO against PyTorch.

Stateless graphs are converted from the validated ONNX (fp16 weights on request; INT8 through
NNCF with the same calibration set). Decoders go straight from PyTorch (export/openvino_ir.py) and
keep their cache inside (stateful); an encoder-decoder's decoder IR is made stateful too.
Weight-only int8/int4 is NNCF's ``compress_weights``.
"""

from __future__ import annotations

from typing import Any, Callable

from edgekit.errors import require
from edgekit.export.options import WEIGHT_ONLY
from edgekit.export.targets import TargetBase

IR_SECTION = {"format": "openvino-ir", "inference_precision": "f32"}
FP16_WEIGHTS_ATOL = 2e-2  # fp16 weights carry ~3 significant digits; outputs of order 1 move by ~1e-3..1e-2
FP16_LOGITS_RTOL = 5e-3
"""A decoder's logits with fp16 weights, of the largest |logit| (SmolLM2: 0.066 at logits up to ~25)."""


def ir_atol(job: Any, atol: float) -> float:
    """The tolerance an IR is validated at: fp16 weights (``--precision fp16``) move outputs by more."""
    return max(atol, FP16_WEIGHTS_ATOL) if job.cfg.precision == "fp16" else atol


class OpenVINOTarget(TargetBase):
    name = "openvino"
    graph_precisions = ("fp32", "fp16", "int8")
    decoder_precisions = ("fp32", "fp16", "bf16", "int8", "int4")
    seq2seq_precisions = ("fp32", "fp16", "int8", "int4")

    def require(self, cfg: Any) -> None:
        super().require(cfg)
        require("openvino", "the openvino target", "openvino")
        if cfg.precision == "int8":
            require("nncf", "OpenVINO INT8", "openvino")
        if cfg.precision == "bf16":
            from edgekit.artifacts import cpu_info
            from edgekit.errors import InputError

            if not {"avx512_bf16", "amx_bf16"} & set(cpu_info()["features"]):
                raise InputError(
                    "--precision bf16 needs a CPU with bf16 instructions (AVX512-BF16 or AMX), and this one has none",
                    "use --precision int8 or int4 (weight-only), or fp32",
                )

    def graph(self, job: Any, case: Any) -> tuple[dict, dict]:
        from edgekit.export.openvino_ir import onnx_to_ir

        tmp, fp16 = job.tmp, job.cfg.precision == "fp16"
        section, validation = to_ir(
            job,
            lambda xml: onnx_to_ir(tmp / "model.onnx", xml, fp16),
            case.validate_ir,
            case.validation,
            case.validation["atol"],
        )
        if job.cfg.precision == "int8":
            from edgekit.compress.int8 import openvino_int8

            quant_section, quality = openvino_int8(
                job.cfg, job.model_dir, case.built, case.reference, tmp / "model.xml", job.steps
            )
            section.update(quant_section, weights="int8")
            validation = {"runtime": "openvino", "passed": True, "quality": quality, "fp32": validation}
        return section, validation

    def decoder(self, job: Any, case: Any) -> tuple[Any, dict, dict]:
        from edgekit.export.onnx_export import ConvertInfo
        from edgekit.export.openvino_ir import torch_decoder_to_ir
        from edgekit.export.validate import ValidationReport, decoder_cases, stateful_compare

        cfg, lay = job.cfg, case.io
        # the IR comes straight from PyTorch; a prior ONNX artifact lends only its validation
        info, onnx_validation = (
            ConvertInfo("openvino.convert_model", None),
            job.prior["validation"] if job.prior is not None else None,
        )
        cases = decoder_cases(case.built.tokenizer, lay, case.reference)

        def validate_ir(session, atol):
            report = ValidationReport(atol=atol, rtol=FP16_LOGITS_RTOL if cfg.precision == "fp16" else 0.0)
            stateful_compare(case.reference, session, lay, cases, report)
            return report

        weight_only = cfg.precision in WEIGHT_ONLY
        parity = None  # weight-only: compared after compression, below
        if cfg.precision == "fp32":  # must equal transformers' greedy tokens
            parity = case.parity
        elif not weight_only:  # 16-bit weights: compared with fp32 and reported
            parity = lambda session: case.weight_only_parity(session, cfg.precision)  # noqa: E731
        cache = {"kv_heads": lay.kv_heads, "head_dim": lay.head_dim}
        convert = lambda xml: torch_decoder_to_ir(job.model_dir, job.spec, xml, cfg.precision == "fp16")  # noqa: E731
        section, validation = to_ir(job, convert, validate_ir, onnx_validation, job.atol, parity, cache)
        if cfg.precision == "bf16":
            return info, *bf16_decoder(job, case, section, validation, validate_ir, cache)
        if weight_only:
            quant, sessions = self.weight_only(job, {"model": "model.xml"}, cache)
            generation = case.weight_only_parity(sessions["model"], cfg.precision)
            section = {**section, "weights": cfg.precision, "quantization": quant["model"]}
            validation = {
                "runtime": "openvino",
                "passed": True,
                "greedy_generation": generation,
                "fp32": validation,
            }
        return info, section, validation

    def seq2seq(self, job: Any, case: Any) -> tuple[dict, dict]:
        from edgekit.export.openvino_ir import onnx_to_ir, stateful_seq2seq_decoder
        from edgekit.export.validate import require_pass, seq2seq_stateful_compare

        cfg, tmp, files, io = job.cfg, job.tmp, case.files, case.built.io
        with job.steps.step("convert to OpenVINO IR"):
            for part in ("encoder", "decoder"):
                ir = onnx_to_ir(tmp / files[part], tmp / f"{part}.xml", cfg.precision == "fp16")
                (tmp / files[part]).unlink()
                files[part] = f"{part}.xml"
        with job.steps.step("validate OpenVINO against PyTorch"):
            report = case.compare(_sessions(tmp, files), ir_atol(job, job.atol))
        with job.steps.step("keep the decoder's self-attention cache inside (stateful)"):
            stateful_seq2seq_decoder(
                tmp / files["decoder"], dict(zip(io.self_names("past_key_values"), io.self_names("present")))
            )
            sessions = _sessions(tmp, files)
            seq2seq_stateful_compare(case.references, sessions["decoder"], case.cases, io, report)
            require_pass(report)
            validation = {
                "runtime": "openvino",
                "inference_precision": "f32",
                **report.as_dict(),
                "onnx": case.validation,
            }
            if cfg.precision == "fp32":
                validation["greedy_generation"] = case.parity(sessions)
        section = {**IR_SECTION, **ir, "stateful": True, "kv_cache_precision": "f32"}
        if cfg.precision in WEIGHT_ONLY:
            del sessions
            calib = case.encoder_calibration()
            if calib is None:
                quant, sessions = self.weight_only(job, files)
            else:  # a captioner: a static INT8 vision encoder, a weight-only decoder
                encoder = self.static_encoder(job, files["encoder"], calib)
                quant, sessions = self.weight_only(job, {"decoder": files["decoder"]})
                quant = {"encoder": encoder, **quant}
                sessions = {**_sessions(tmp, {"encoder": files["encoder"]}), **sessions}
            generation = case.weight_only_parity(sessions, cfg.precision)
            section = {**section, "weights": cfg.precision, "quantization": quant}
            validation = {
                "runtime": "openvino",
                "passed": True,
                "greedy_generation": generation,
                "fp32": validation,
            }
        return section, validation

    def static_encoder(self, job: Any, name: str, calib: Any) -> dict:
        """NNCF static INT8 of the validated encoder IR ``tmp/name``, in place, calibrated on ``calib``."""
        import openvino as ov

        from edgekit.compress.int8 import openvino_static_encoder
        from edgekit.export.openvino_ir import replace_ir

        with job.steps.step(f"static INT8 encoder (NNCF, {len(calib.feeds)} images)"):
            quantized, quant = openvino_static_encoder(
                ov.Core().read_model(str(job.tmp / name)), calib, job.steps.quiet
            )
            replace_ir(quantized, job.tmp / name)
            del quantized
        return quant

    def weight_only(
        self, job: Any, files: dict[str, str], cache: dict | None = None
    ) -> tuple[dict[str, dict], dict[str, Any]]:
        """Weight-only int8/int4 (NNCF) of each validated IR in ``tmp``, in place; their sessions."""
        import openvino as ov

        from edgekit.compress.weight_only import openvino_weight_only
        from edgekit.export.openvino_ir import replace_ir

        quant = {}
        with job.steps.step(f"weight-only {job.cfg.precision}"):
            for part, name in files.items():
                compressed, quant[part] = openvino_weight_only(
                    ov.Core().read_model(str(job.tmp / name)), job.cfg.precision
                )
                replace_ir(compressed, job.tmp / name)
                del compressed
        return quant, _sessions(job.tmp, files, cache)


def bf16_decoder(
    job: Any, case: Any, section: dict, validation: dict, validate_ir, cache: dict
) -> tuple[dict, dict]:
    """The validated f32 IR, run by the CPU plugin in bf16 (weights held and read as 16-bit, the
    cache kept f32): its logits against PyTorch and its greedy tokens against fp32, reported."""
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.openvino_backend import OpenVINOSession

    with job.steps.step("validate bf16 against PyTorch"):
        session = OpenVINOSession(job.tmp / "model.xml", SessionOptions(), "bf16", cache)
        report = validate_ir(session, float("inf"))
    generation = case.weight_only_parity(session, "bf16")
    section = {
        **section,
        "inference_precision": session.precision,
        "weights": "bf16 (converted by the CPU plugin at load)",
    }
    return section, {
        "runtime": "openvino",
        "passed": True,
        "inference_precision": session.precision,
        "max_abs_diff": report.max_abs_diff,
        "greedy_generation": generation,
        "fp32": validation,
    }


def _sessions(tmp, files: dict[str, str], cache: dict | None = None) -> dict[str, Any]:
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.openvino_backend import OpenVINOSession

    return {part: OpenVINOSession(tmp / name, SessionOptions(), "f32", cache) for part, name in files.items()}


def to_ir(
    job: Any,
    convert: Callable,
    validate_ir: Callable,
    onnx_validation: dict | None,
    atol: float,
    parity: Callable | None = None,
    cache: dict | None = None,
) -> tuple[dict, dict]:
    """Write ``tmp/model.xml`` with ``convert(xml_path)``, validate the IR against PyTorch with
    ``validate_ir(session, atol)`` (and greedy ``parity(session)``), and drop the ONNX."""
    from edgekit.export.validate import require_pass
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.openvino_backend import OpenVINOSession

    tmp = job.tmp
    with job.steps.step("convert to OpenVINO IR"):
        info = convert(tmp / "model.xml")
    with job.steps.step("validate OpenVINO against PyTorch"):
        atol = ir_atol(job, atol)
        session = OpenVINOSession(tmp / "model.xml", SessionOptions(), "f32", cache)
        report = validate_ir(session, atol)
        require_pass(report)
        validation = {
            "runtime": "openvino",
            "inference_precision": session.precision,
            **report.as_dict(),
            "onnx": onnx_validation,
        }
        if parity is not None:
            validation["greedy_generation"] = parity(session)
    (tmp / "model.onnx").unlink(missing_ok=True)
    return {"model_file": "model.xml", **IR_SECTION, **info}, validation


TARGET = OpenVINOTarget()
