"""``export_model(config) -> artifact folder``: load, convert, validate, write atomically."""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path

from edgekit.artifacts import build_manifest, check_out_dir, hash_folder, now_iso, read_json, staged_output, write_json
from edgekit.errors import InputError, require
from edgekit.export.config import ExportConfig

log = logging.getLogger("edgekit.export")

# Files a user needs beside the graph to use it (tokenizer, config, sentence-transformers pooling).
_COPY_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "added_tokens.json",
    "modules.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
)


def read_model_config(model_dir: Path) -> dict:
    model_dir = Path(model_dir).expanduser()
    if not model_dir.exists():
        raise InputError(f"model folder '{model_dir}' does not exist", "pass a Hugging Face model folder with --model")
    if not model_dir.is_dir():
        raise InputError(f"--model '{model_dir}' is a file, not a folder", "pass the folder that holds config.json")
    cfg_file = model_dir / "config.json"
    if not cfg_file.is_file():
        raise InputError(f"'{model_dir}' has no config.json, so it is not a Hugging Face model folder", "pass the folder that holds config.json and the weights")
    return read_json(cfg_file, "fix the file")


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _copy_support_files(model_dir: Path, dest: Path) -> list[str]:
    copied = []
    for name in _COPY_FILES:
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, dest / name)
            copied.append(name)
    for pool_dir in model_dir.glob("*_Pooling"):
        if pool_dir.is_dir():
            shutil.copytree(pool_dir, dest / pool_dir.name)
            copied.append(pool_dir.name)
    return copied


def export_model(cfg: ExportConfig, quiet: bool = False) -> Path:
    """Export the model folder ``cfg.model`` to an artifact folder ``cfg.out`` and return its path.

    Checks every input before doing work; validation failure raises ValidationError and leaves
    nothing behind.
    """
    from edgekit._progress import Steps
    from edgekit.export.encoder import build_encoder, dynamic_axes
    from edgekit.export.onnx_export import EXPORTERS, convert
    from edgekit.export.specs import spec_for
    from edgekit.export.targets import check_target
    from edgekit.export.validate import compare, encoder_cases, require_pass

    started = now_iso()
    model_dir = Path(cfg.model).expanduser().resolve()
    raw_config = read_model_config(model_dir)
    check_target(cfg.target)
    if cfg.exporter not in EXPORTERS:
        raise InputError(f"unknown exporter '{cfg.exporter}'", f"use one of {', '.join(EXPORTERS)}")
    if not 7 <= cfg.opset <= 23:
        raise InputError(f"opset {cfg.opset} is out of range", "use an opset between 7 and 23 (default 20)")
    if cfg.atol is not None and cfg.atol <= 0:
        raise InputError(f"--atol must be positive, got {cfg.atol}", "pass e.g. --atol 1e-4")
    spec = spec_for(raw_config.get("model_type"))
    out = check_out_dir(cfg.out, cfg.overwrite)
    require("torch", "export", "torch")
    require("onnx", "export", "torch")
    require("onnxruntime", "validating an export", "ort")
    from edgekit.runtimes.ort_backend import OrtSession
    from edgekit.runtimes.torch_backend import TorchSession, weight_files
    from edgekit.runtimes.base import SessionOptions

    atol = cfg.atol if cfg.atol is not None else spec.atol
    with Steps(f"export {model_dir.name}", quiet=quiet) as steps, staged_output(out, cfg.overwrite) as tmp:
        with steps.step("hash source"):
            source_hash = hash_folder(model_dir)
        with steps.step("load model"):
            _seed_everything(cfg.seed)
            built = build_encoder(model_dir, spec, cfg.task)
        with steps.step("convert to ONNX"):
            example = built.tokenizer(["Edge devices run small models.", "A second, longer example sentence for the export."], padding=True, return_tensors="pt")
            kwargs = {name: example[name] for name in built.input_names}
            axes = dynamic_axes(built.input_names, built.output_names)
            info = convert(built.module, kwargs, built.input_names, built.output_names, axes, tmp / "model.onnx", cfg.opset, cfg.exporter)
            import onnx

            onnx.checker.check_model(str(tmp / "model.onnx"))
        with steps.step("validate against PyTorch"):
            weight_bytes = sum(p.stat().st_size for p in weight_files(model_dir))
            reference = TorchSession(built.module, built.input_names, built.output_names, weight_bytes)
            candidate = OrtSession(tmp / "model.onnx", SessionOptions())
            cases = encoder_cases(built.tokenizer, built.input_names, built.max_length)
            report = compare(reference, candidate, cases, atol)
            require_pass(report)
        with steps.step("write artifact"):
            copied = _copy_support_files(model_dir, tmp)
            task = "sentence-embedding" if built.pooling else "feature-extraction"
            manifest = build_manifest(
                stage="export",
                config=cfg,
                source={
                    "path": str(model_dir),
                    "sha256": source_hash,
                    "model_type": raw_config.get("model_type"),
                    "architectures": raw_config.get("architectures"),
                    "family": spec.family,
                },
                folder=tmp,
                started=started,
                seed=cfg.seed,
                export={
                    "target": cfg.target,
                    "task": task,
                    "model_file": "model.onnx",
                    "exporter": info.exporter,
                    "exporter_fallback_reason": info.fallback_reason,
                    "opset": info.opset,
                    "attn_implementation": built.module.model.config._attn_implementation,
                    "inputs": [{"name": n, "shape": ["batch", "sequence"], "dtype": "int64"} for n in built.input_names],
                    "outputs": [{"name": n, "shape": ["batch", "sequence", built.config.hidden_size] if n == "last_hidden_state" else ["batch", built.config.hidden_size], "dtype": "float32"} for n in built.output_names],
                    "pooling": {"mode": built.pooling.mode, "normalize": built.pooling.normalize} if built.pooling else None,
                    "max_length": built.max_length,
                    "support_files": copied,
                },
                validation={"runtime": "onnxruntime", **report.as_dict()},
                timings_s=steps.timings,
            )
            write_json(tmp / "manifest.json", manifest)
    log.info("wrote %s", out)
    return out
