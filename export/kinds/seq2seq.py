"""Encoder-decoders (T5, BART, Whisper, captioners): an encoder graph that returns the cross-attention cache with
its output, computed once per input, and one decoder graph for every step; both validated against
PyTorch, then greedy generation compared token for token with transformers. The target's
``seq2seq`` role then converts or compresses both graphs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from edgekit.errors import InputError
from edgekit.export.job import ExportJob, Named, convert_and_check, prior_info, reference_session
from edgekit.export.options import PARITY_TOKENS, WEIGHT_ONLY, WEIGHT_ONLY_PARITY_TOKENS, check_cached
from edgekit.models.cache_io import eos_token_ids

log = logging.getLogger("edgekit.export")

SEQ2SEQ_HINT = (
    "export with --target onnx, ort or openvino at fp32 (openvino and trt: fp16), or weight-only int8/int4 "
    "with --target ort or openvino (captioners: add --calib photos/ for a static INT8 vision encoder)"
)


def check(cfg: Any, target: Any, spec: Any = None) -> None:
    """As every cached model; besides, a captioner's vision encoder takes ``--calib`` images with
    int8/int4 (static INT8 of its activations; the decoder stays weight-only)."""
    import dataclasses

    if cfg.calib is not None and cfg.precision in WEIGHT_ONLY and cfg.precision in target.seq2seq_precisions:
        _check_encoder_calibration(cfg, spec)
        cfg = dataclasses.replace(cfg, calib=None)
    check_cached(cfg, target.seq2seq_precisions, "encoder-decoders", SEQ2SEQ_HINT)


def _check_encoder_calibration(cfg: Any, spec: Any) -> None:
    from edgekit.calibration.dataset import check_calib_path, check_size
    from edgekit.calibration.images import image_files
    from edgekit.calibration.ranges import RangeMethod

    if spec is None or spec.encoder_input != "pixel_values":
        family = getattr(spec, "family", "this")
        raise InputError(
            f"--calib calibrates an image captioner's vision encoder; {family} encoder-decoders "
            f"take weight-only {cfg.precision} and read no calibration data",
            "drop --calib",
        )
    if not image_files(check_calib_path(cfg.calib)):  # unreadable ones are named and skipped later
        raise InputError(
            f"--calib '{cfg.calib}' holds no images, and a captioner's encoder reads images",
            "pass a folder of JPEG/PNG photos",
        )
    RangeMethod(cfg.calib_method, cfg.percentile).check()
    check_size(cfg.calib_size)


@dataclass
class Seq2SeqCase:
    """What a target's ``seq2seq`` role works with: both graphs validated in fp32 at ``files``."""

    job: ExportJob
    built: Any
    references: dict
    cases: dict
    files: dict
    """Graph part (``encoder``, ``decoder``) -> file name in ``tmp``; a target renames what it converts."""
    validation: dict

    def compare(self, sessions: dict, atol: float):
        """Both graphs on another runtime's ``sessions`` against PyTorch, as a ValidationReport (raises on failure)."""
        from edgekit.export.validate import ValidationReport, require_pass, seq2seq_compare

        report = ValidationReport(atol=atol)
        seq2seq_compare(self.references, sessions, self.cases, self.built.io, report)
        require_pass(report)
        return report

    def parity(self, sessions: dict, new_tokens: int = PARITY_TOKENS, strict: bool = True, cfg=None) -> dict:
        from edgekit.export.validate import seq2seq_greedy_parity

        return seq2seq_greedy_parity(
            self.built, sessions, self.cases, new_tokens=new_tokens, strict=strict, cfg=cfg
        )

    def encoder_calibration(self) -> Any:
        """The ``--calib`` images through the artifact's preprocessor (a captioner's static INT8
        encoder), or None: weight-only graphs read no data."""
        from pathlib import Path

        from edgekit.calibration.dataset import image_calibration

        cfg = self.job.cfg
        if cfg.calib is None:
            return None
        with self.job.steps.step("calibration images"):
            calib = image_calibration(
                self.job.model_dir, Path(cfg.calib).expanduser(), "pixel_values", cfg.calib_size, cfg.seed
            )
        if self.built.prompt is not None:  # the default task's prompt beside every image (Florence-2)
            from edgekit.runtimes.seq2seq import image_encoder_feed

            export = {"encoder_prompt": self.built.prompt}
            calib.feeds = [
                image_encoder_feed(export, self.built.tokenizer, f["pixel_values"]) for f in calib.feeds
            ]
        return calib

    def weight_only_parity(self, sessions: dict, precision: str) -> dict:
        """Greedy tokens of compressed graphs against fp32, reported (and warned about), not required."""
        from edgekit.runtimes.generate import GenerationConfig

        with self.job.steps.step("compare greedy generation with fp32"):
            positions = int(getattr(self.built.config, "max_target_positions", 0) or 1 << 30)
            cfg_gen = GenerationConfig(max_new_tokens=min(WEIGHT_ONLY_PARITY_TOKENS, positions - 1))
            generation = self.parity(sessions, cfg_gen.max_new_tokens, strict=False, cfg=cfg_gen)
        if not generation["identical"]:
            log.warning(
                "weight-only %s: greedy tokens match fp32 on %d of %d inputs (matching prefixes %s)",
                precision,
                generation["identical_inputs"],
                generation["inputs"],
                generation["matching_prefix"],
            )
        return generation


def export(job: ExportJob) -> tuple[dict, dict]:
    from edgekit.export.validate import seq2seq_cases
    from edgekit.models.seq2seq import build_seq2seq

    with job.steps.step("load model"):
        built = build_seq2seq(job.model_dir, job.spec)
    references = {part: reference_session(job, built, f"{part}.onnx") for part in ("encoder", "decoder")}
    cases = seq2seq_cases(built, references["encoder"], job.cfg.seed)
    files = {"encoder": "encoder.onnx", "decoder": "decoder.onnx"}
    info, validation = _graphs(job, built, references, cases, files) if job.prior is None else prior_info(job)
    case = Seq2SeqCase(job, built, references, cases, files, validation)
    section, validation = job.target.seq2seq(job, case)
    enc_in, enc_out = built.encoder_names()
    dec_in, dec_out = built.decoder_names()
    config = built.text_config
    return {
        "task": job.task,
        "exporter": info.exporter,
        "exporter_fallback_reason": info.fallback_reason,
        "opset": info.opset,
        "attn_implementation": built.model.config._attn_implementation,
        "model_file": None,
        "model_files": case.files,
        "graphs": {
            "encoder": {"inputs": enc_in, "outputs": enc_out},
            "decoder": {"inputs": dec_in, "outputs": dec_out},
        },
        "seq2seq": built.io.as_dict(),
        "decoder_start_token_id": built.start_token,
        "text_prompt": job.spec.text_prompt,
        "encoder_prompt": built.prompt,
        "eos_token_ids": list(
            eos_token_ids(built.model.generation_config.eos_token_id or getattr(config, "eos_token_id", None))
        ),
        "max_length": int(
            getattr(config, "max_target_positions", None)
            or getattr(config, "max_position_embeddings", None)
            or 512
        ),
        "max_source_length": int(config.max_position_embeddings)
        if job.spec.text_encoder and getattr(config, "max_position_embeddings", None)
        else None,
        **section,
    }, validation


def _graphs(job: ExportJob, built: Any, references: dict, cases: dict, files: dict) -> tuple[Any, dict]:
    """Convert both graphs and validate them on ONNX Runtime against PyTorch."""
    from edgekit.export.validate import ValidationReport, require_pass, seq2seq_compare, seq2seq_greedy_parity
    from edgekit.models.seq2seq import decoder_example, decoder_shapes, encoder_example, encoder_shapes
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.ort_backend import OrtSession

    infos = {}
    for part, module, example, (shapes, axes) in (
        (
            "encoder",
            built.encoder,
            encoder_example(built.model, job.spec, model_dir=job.model_dir),
            encoder_shapes(built),
        ),
        ("decoder", built.decoder, decoder_example(built), decoder_shapes(built)),
    ):
        names = built.encoder_names() if part == "encoder" else built.decoder_names()
        infos[part] = convert_and_check(job, Named(module, *names), example, axes, shapes, files[part])
    with job.steps.step("validate against PyTorch"):
        sessions = {part: OrtSession(job.tmp / files[part], SessionOptions()) for part in files}
        report = ValidationReport(atol=job.atol)
        seq2seq_compare(references, sessions, cases, built.io, report)
        require_pass(report)
        generation = seq2seq_greedy_parity(built, sessions, cases, new_tokens=PARITY_TOKENS)
    return infos["decoder"], {"runtime": "onnxruntime", **report.as_dict(), "greedy_generation": generation}
