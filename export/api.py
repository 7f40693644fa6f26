"""``export_model(config) -> artifact folder``: the export pipeline.

check the options -> the model kind (edgekit/models/kinds.py) loads the source, builds its graphs
and validates them against PyTorch (edgekit/export/kinds/<kind>.py) -> the target applies itself:
convert, quantize, build (edgekit/export/targets/<target>.py) -> the manifest, written into a
staging folder that is renamed into place only when everything passed.
"""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from pathlib import Path

from edgekit.artifacts import build_manifest, check_out_dir, hash_folder, now_iso, staged_output, write_json
from edgekit.errors import InputError, require
from edgekit.export.config import ExportConfig
from edgekit.export.job import ExportJob, copy_support_files, onnx_artifact
from edgekit.models.source import check_weights, read_model_config

log = logging.getLogger("edgekit.export")


def export_model(cfg: ExportConfig, quiet: bool = False) -> Path:
    """Export the model folder ``cfg.model`` to an artifact folder ``cfg.out`` and return its path.

    Checks every input before doing work; validation failure raises ValidationError and leaves
    nothing behind.
    """
    from edgekit._progress import Steps

    started = now_iso()
    job = plan_export(cfg)
    inputs = (job.cfg.model, job.model_dir, job.cfg.calib, job.cfg.calib_text, job.cfg.eval_data)
    out = check_out_dir(job.cfg.out, job.cfg.overwrite, inputs)
    job.target.require(job.cfg)
    with (
        Steps(f"export {job.model_dir.name}", quiet=quiet) as steps,
        staged_output(out, job.cfg.overwrite, inputs) as tmp,
    ):
        job = job.replace(tmp=tmp, steps=steps)
        with steps.step("hash source"):
            source_hash = hash_folder(job.model_dir)
        _seed_everything(job.cfg.seed)
        section, validation = job.kind.export_module().export(job)
        with steps.step("write artifact"):
            section["support_files"] = copy_support_files(job.model_dir, tmp)
            manifest = build_manifest(
                stage="export",
                config=job.cfg,
                source={
                    "path": str(job.model_dir),
                    "sha256": source_hash,
                    "model_type": job.raw_config.get("model_type"),
                    "architectures": job.raw_config.get("architectures"),
                    "family": job.spec.family,
                },
                folder=tmp,
                started=started,
                seed=job.cfg.seed,
                export={
                    "target": job.cfg.target,
                    "precision": job.cfg.precision,
                    "model_file": "model.onnx",
                    "format": "onnx",
                    **section,
                    "from_artifact": job.from_artifact,
                },
                validation=validation,
                timings_s=steps.timings,
            )
            write_json(tmp / "manifest.json", manifest)
    log.info("wrote %s", out)
    return out


def plan_export(cfg: ExportConfig) -> ExportJob:
    """Everything about the export that can be wrong, checked before any work: the source (an HF
    folder, a CTranslate2 folder converted once, or a prior ONNX artifact), the kind, the target
    and every option. Returns the job the kind and the target run."""
    from edgekit.export.onnx_export import EXPORTERS
    from edgekit.export.targets import get_target
    from edgekit.models.ctranslate2 import ct2_hf_folder, is_ct2_folder
    from edgekit.models.gguf import find_gguf, gguf_hf_folder, source_gguf
    from edgekit.models.kinds import resolve_kind

    model_dir = Path(cfg.model).expanduser().resolve()
    gguf_file = find_gguf(model_dir)
    if gguf_file is not None:  # llama.cpp's format: convert once (cached), export that
        model_dir = gguf_hf_folder(gguf_file)
    elif model_dir.is_dir() and is_ct2_folder(model_dir):  # a CTranslate2 Whisper: the same
        model_dir = ct2_hf_folder(model_dir)
    cfg = replace(cfg, precision=_precision(cfg, gguf_file))
    raw_config = read_model_config(model_dir)
    prior = onnx_artifact(model_dir)
    if prior is not None:  # an edgekit ONNX artifact: convert its validated graph, reference = its source
        cfg, model_dir = _from_prior(cfg, model_dir, prior)
        gguf_file = source_gguf(model_dir)  # an artifact of a GGUF can still take its blocks
    if cfg.precision == "gguf" and gguf_file is None:
        raise InputError(
            "--precision gguf keeps a GGUF file's own quantized weights, and --model is no GGUF file"
            + (" (nor an artifact of one that is still in place)" if prior else ""),
            "pass --model model.gguf, or pick fp32, int8 or int4",
        )
    target = get_target(cfg.target)
    target.check_precision(cfg.precision)
    if cfg.exporter not in EXPORTERS:
        raise InputError(f"unknown exporter '{cfg.exporter}'", f"use one of {', '.join(EXPORTERS)}")
    if not 7 <= cfg.opset <= 23:
        raise InputError(f"opset {cfg.opset} is out of range", "use an opset between 7 and 23 (default 20)")
    if cfg.atol is not None and cfg.atol <= 0:
        raise InputError(f"--atol must be positive, got {cfg.atol}", "pass e.g. --atol 1e-4")
    kind, task = resolve_kind(cfg.task, raw_config)
    spec = kind.module().spec_for(raw_config.get("model_type"))
    if cfg.max_batch < 1:
        raise InputError(f"--max-batch must be at least 1, got {cfg.max_batch}", "pass e.g. --max-batch 16")
    target.check_options(cfg)
    kind.export_module().check(cfg, target, spec)
    if cfg.eval_data is not None or cfg.max_drop is not None:
        require("sklearn", "measuring accuracy on labelled eval data", "ort")
    if prior is not None and not target.reuses(prior):
        prior = None  # that graph is for one runtime only (GroupQueryAttention): export again from its source
    check_weights(model_dir)
    atol = cfg.atol if cfg.atol is not None else spec.atol
    return ExportJob(cfg, model_dir, raw_config, spec, task, atol, kind, target, prior, gguf_file=gguf_file)


def _precision(cfg: ExportConfig, gguf_file: Path | None) -> str:
    """--precision as given; unset: a GGUF's own blocks where the target keeps them (ort), else fp32."""
    from edgekit.export.targets import get_target

    if cfg.precision is None:
        keeps = gguf_file is not None and "gguf" in get_target(cfg.target).decoder_precisions
        if gguf_file is not None and not keeps:
            log.info(
                "--target %s does not keep a GGUF's blocks: exporting its dequantized fp32 weights",
                cfg.target,
            )
        return "gguf" if keeps else "fp32"
    return cfg.precision


def _from_prior(cfg: ExportConfig, artifact: Path, prior: dict) -> tuple[ExportConfig, Path]:
    """The config and source folder for converting the ONNX artifact ``artifact`` to another target."""
    if cfg.target == "onnx" and cfg.precision == "fp32":
        raise InputError(
            f"'{artifact}' is already an ONNX artifact",
            "pick another --target (e.g. openvino), or export from the HF folder",
        )
    model_dir = Path(prior["source"]["path"])
    read_model_config(model_dir)
    if hash_folder(model_dir) != prior["source"].get("sha256"):
        raise InputError(
            f"the source model '{model_dir}' of '{cfg.model}' changed since that export",
            "export again from the HF folder",
        )
    if cfg.task == "auto":
        cfg = replace(cfg, task=prior["export"]["task"])
    return cfg, model_dir


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
