"""``export_model(config) -> artifact folder``: load, convert, validate, write atomically."""

from __future__ import annotations

import dataclasses
import logging
import random
import shutil
from dataclasses import replace
from pathlib import Path

from edgekit.artifacts import build_manifest, check_out_dir, hash_folder, now_iso, read_json, staged_output, write_json
from edgekit.errors import InputError, require
from edgekit.export.config import ExportConfig
from edgekit.export.targets import WEIGHT_ONLY

log = logging.getLogger("edgekit.export")

# Files a user needs beside the graph to use it (tokenizer, config, sentence-transformers pooling).
_COPY_FILES = (
    "config.json",
    "generation_config.json",
    "chat_template.jinja",
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
    "preprocessor_config.json",
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
    from edgekit.export.onnx_export import EXPORTERS
    from edgekit.export.int8 import check_int8_options
    from edgekit.export.specs import decoder_spec_for, resolve_task, seq2seq_spec_for, spec_for
    from edgekit.export.targets import check_precision, check_target

    started = now_iso()
    model_dir = Path(cfg.model).expanduser().resolve()
    from edgekit.export.ctranslate2 import ct2_hf_folder, is_ct2_folder

    if model_dir.is_dir() and is_ct2_folder(model_dir):  # a CTranslate2 Whisper: convert once (cached), export that
        model_dir = ct2_hf_folder(model_dir)
    raw_config = read_model_config(model_dir)
    prior = _onnx_artifact(model_dir)
    if prior is not None:  # an edgekit ONNX artifact: convert its validated graph, reference = its source
        if cfg.target == "onnx" and cfg.precision == "fp32":
            raise InputError(f"'{model_dir}' is already an ONNX artifact", "pick another --target (e.g. openvino), or export from the HF folder")
        model_dir = Path(prior["source"]["path"])
        read_model_config(model_dir)
        if hash_folder(model_dir) != prior["source"].get("sha256"):
            raise InputError(f"the source model '{model_dir}' of '{cfg.model}' changed since that export", "export again from the HF folder")
        if cfg.task == "auto":
            cfg = replace(cfg, task=prior["export"]["task"])
        if prior["export"].get("attention") == "GroupQueryAttention" and cfg.target != "ort":
            prior = None  # that graph is for ONNX Runtime only: export again from its source
    check_target(cfg.target)
    check_precision(cfg.target, cfg.precision)
    if cfg.exporter not in EXPORTERS:
        raise InputError(f"unknown exporter '{cfg.exporter}'", f"use one of {', '.join(EXPORTERS)}")
    if not 7 <= cfg.opset <= 23:
        raise InputError(f"opset {cfg.opset} is out of range", "use an opset between 7 and 23 (default 20)")
    if cfg.atol is not None and cfg.atol <= 0:
        raise InputError(f"--atol must be positive, got {cfg.atol}", "pass e.g. --atol 1e-4")
    from edgekit.export.vision import VISION_TASKS, vision_model_types, vision_spec_for

    if raw_config.get("model_type") in vision_model_types():
        if cfg.task not in ("auto",) + VISION_TASKS:
            raise InputError(f"task '{cfg.task}' does not apply to the vision model '{raw_config.get('model_type')}'", "use --task auto or image-feature-extraction")
        task, spec = VISION_TASKS[0], vision_spec_for(raw_config.get("model_type"))
    else:
        task = resolve_task(cfg.task, raw_config)
        if task == "text-generation":
            spec = decoder_spec_for(raw_config.get("model_type"))
        elif task == "seq2seq":
            spec = seq2seq_spec_for(raw_config.get("model_type"))
        else:
            spec = spec_for(raw_config.get("model_type"))
    if task == "seq2seq" and (cfg.target == "trt" or cfg.precision not in ("fp32", "fp16") + WEIGHT_ONLY or (cfg.precision in WEIGHT_ONLY and cfg.target == "onnx")):
        raise InputError(f"--target {cfg.target} --precision {cfg.precision} is not available for encoder-decoders", "export with --target onnx, ort or openvino at fp32 (openvino: fp16 too), or weight-only int8/int4 with --target ort or openvino")
    if task == "text-generation" and cfg.target == "trt" and cfg.precision != "fp16":
        raise InputError(f"--target trt --precision {cfg.precision} is not available for decoders", "use --precision fp16 for TensorRT, or weight-only int8/int4 with --target ort or openvino")
    if cfg.max_batch < 1:
        raise InputError(f"--max-batch must be at least 1, got {cfg.max_batch}", "pass e.g. --max-batch 16")
    if cfg.max_seq is not None and (cfg.max_seq < 2 or cfg.target != "trt"):
        raise InputError(f"--max-seq-len {cfg.max_seq} " + ("must be at least 2" if cfg.max_seq < 2 else "applies only to --target trt"), "pass e.g. --max-seq-len 1024 with --target trt, or drop it")
    check_int8_options(cfg, decoder=task in ("text-generation", "seq2seq"))
    if task in ("text-generation", "seq2seq") and cfg.exporter == "torchscript":
        raise InputError("the TorchScript exporter cannot export a KV-cache decoder correctly", "use --exporter dynamo (the default)")
    out = check_out_dir(cfg.out, cfg.overwrite)
    require("torch", "export", "torch")
    require("onnx", "export", "torch")
    require("onnxruntime", "validating an export", "ort")
    if cfg.target == "openvino":
        require("openvino", "the openvino target", "openvino")
        if cfg.precision == "int8":
            require("nncf", "OpenVINO INT8", "openvino")
    if cfg.eval_data is not None or cfg.max_drop is not None:
        require("sklearn", "measuring accuracy on labelled eval data", "ort")

    atol = cfg.atol if cfg.atol is not None else spec.atol
    run = {"text-generation": _export_decoder, "seq2seq": _export_seq2seq, VISION_TASKS[0]: _export_vision}.get(task, _export_encoder)
    with Steps(f"export {model_dir.name}", quiet=quiet) as steps, staged_output(out, cfg.overwrite) as tmp:
        with steps.step("hash source"):
            source_hash = hash_folder(model_dir)
        _seed_everything(cfg.seed)
        export_section, validation = run(cfg, model_dir, spec, task, atol, tmp, steps, prior)
        with steps.step("write artifact"):
            export_section["support_files"] = _copy_support_files(model_dir, tmp)
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
                export={"target": cfg.target, "precision": cfg.precision, "model_file": "model.onnx", "format": "onnx", **export_section, "from_artifact": str(Path(cfg.model).expanduser().resolve()) if prior else None},
                validation=validation,
                timings_s=steps.timings,
            )
            write_json(tmp / "manifest.json", manifest)
    log.info("wrote %s", out)
    return out


def _convert_and_check(built, kwargs, axes, tmp: Path, cfg: ExportConfig, steps, dynamic_shapes=None, file_name: str = "model.onnx"):
    import onnx

    from edgekit.export.onnx_export import convert

    with steps.step(f"convert to ONNX ({file_name})" if file_name != "model.onnx" else "convert to ONNX"):
        info = convert(built.module, kwargs, built.input_names, built.output_names, axes, tmp / file_name, cfg.opset, cfg.exporter, dynamic_shapes)
        onnx.checker.check_model(str(tmp / file_name))
    return info


def _convert_validate(built, kwargs, axes, reference, cases, atol: float, tmp: Path, cfg: ExportConfig, steps, prior: dict | None):
    """Export and validate on ONNX Runtime against PyTorch (encoders); or take both from a prior ONNX artifact."""
    if prior is not None:
        return _prior_info(prior, cfg, tmp)
    from edgekit.export.validate import compare, require_pass
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.ort_backend import OrtSession

    info = _convert_and_check(built, kwargs, axes, tmp, cfg, steps)
    with steps.step("validate against PyTorch"):
        report = compare(reference, OrtSession(tmp / "model.onnx", SessionOptions()), cases, atol)
        require_pass(report)
    return info, {"runtime": "onnxruntime", **report.as_dict()}


def _io_section(built, shapes: dict[str, list], drop: tuple[str, ...] = ()) -> dict:
    return {
        "inputs": [{"name": n, "shape": shapes[n], "dtype": "int64" if not n.startswith("past_key_values") else "float32"} for n in built.input_names if n not in drop],
        "outputs": [{"name": n, "shape": shapes[n], "dtype": "float32"} for n in built.output_names],
    }


def _export_encoder(cfg: ExportConfig, model_dir: Path, spec, task: str, atol: float, tmp: Path, steps, prior: dict | None = None) -> tuple[dict, dict]:
    from edgekit.export.encoder import build_encoder, dynamic_axes
    from edgekit.export.validate import compare, encoder_cases
    from edgekit.runtimes.torch_backend import TorchSession, weight_files

    with steps.step("load model"):
        built = build_encoder(model_dir, spec, task)
    weight_bytes = sum(p.stat().st_size for p in weight_files(model_dir))
    reference = TorchSession(built.module, built.input_names, built.output_names, weight_bytes)
    cases = encoder_cases(built.tokenizer, built.input_names, built.max_length)
    example = built.tokenizer(["Edge devices run small models.", "A second, longer example sentence for the export."], padding=True, return_tensors="pt")
    kwargs = {name: example[name] for name in built.input_names}
    info, validation = _convert_validate(built, kwargs, dynamic_axes(built.input_names, built.output_names), reference, cases, atol, tmp, cfg, steps, prior)
    hidden = built.config.hidden_size
    shapes = {n: ["batch", "sequence"] for n in built.input_names}
    shapes.update({"last_hidden_state": ["batch", "sequence", hidden], "sentence_embedding": ["batch", hidden]})
    io = _io_section(built, shapes)
    target_section, validation = _apply_target(cfg, model_dir, built, reference, tmp, steps, validation, io, lambda ov_session, ov_atol: compare(reference, ov_session, cases, ov_atol))
    section = {
        "task": "sentence-embedding" if built.pooling else "feature-extraction",
        "exporter": info.exporter,
        "exporter_fallback_reason": info.fallback_reason,
        "opset": info.opset,
        "attn_implementation": built.module.model.config._attn_implementation,
        **io,
        "pooling": {"mode": built.pooling.mode, "normalize": built.pooling.normalize} if built.pooling else None,
        "max_length": built.max_length,
        **target_section,
    }
    return section, validation


def _apply_target(cfg: ExportConfig, model_dir: Path, built, reference, tmp: Path, steps, validation: dict, io: dict, validate_ir) -> tuple[dict, dict]:
    """From the validated fp32 ONNX in ``tmp`` to what ``cfg.target`` and ``cfg.precision`` ask for (encoders)."""
    if cfg.target in ("onnx", "ort") and cfg.precision != "fp32":
        from edgekit.export.int8 import ort_int8

        section, quality = ort_int8(cfg, model_dir, built, reference, tmp, steps)
        return section, {"runtime": "onnxruntime", "passed": True, "quality": quality, "fp32": validation}
    if cfg.target == "trt":
        from edgekit.export.tensorrt import trt_export

        section, quality = trt_export(cfg, model_dir, built, reference, tmp, steps, io["inputs"])
        return section, {"runtime": "onnxruntime", "passed": True, "quality": quality, "fp32": validation}
    if cfg.target == "openvino":
        section, validation = _to_openvino(cfg, tmp, steps, validation, validate_ir)
        if cfg.precision == "int8":
            from edgekit.export.int8 import openvino_int8

            quant_section, quality = openvino_int8(cfg, model_dir, built, reference, tmp / "model.xml", steps)
            section.update(quant_section, weights="int8")
            validation = {"runtime": "openvino", "passed": True, "quality": quality, "fp32": validation}
        return section, validation
    return {}, validation


def _export_vision(cfg: ExportConfig, model_dir: Path, spec, task: str, atol: float, tmp: Path, steps, prior: dict | None = None) -> tuple[dict, dict]:
    from edgekit.export.validate import compare
    from edgekit.export.vision import build_vision, vision_axes, vision_cases
    from edgekit.runtimes.torch_backend import TorchSession, weight_files

    with steps.step("load model"):
        built = build_vision(model_dir, spec)
    weight_bytes = sum(p.stat().st_size for p in weight_files(model_dir))
    reference = TorchSession(built.module, built.input_names, built.output_names, weight_bytes)
    cases = vision_cases(built, cfg.seed)
    import torch

    kwargs = {"pixel_values": torch.from_numpy(cases[1][1]["pixel_values"][:2])}
    info, validation = _convert_validate(built, kwargs, vision_axes(built.output_names), reference, cases, atol, tmp, cfg, steps, prior)
    h, w = built.image_size
    hidden = built.config.hidden_size
    io = {
        "inputs": [{"name": "pixel_values", "shape": ["batch", built.channels, h, w], "dtype": "float32"}],
        "outputs": [{"name": n, "shape": ["batch", "tokens", hidden] if n == "last_hidden_state" else ["batch", hidden], "dtype": "float32"} for n in built.output_names],
    }
    target_section, validation = _apply_target(cfg, model_dir, built, reference, tmp, steps, validation, io, lambda ov_session, ov_atol: compare(reference, ov_session, cases, ov_atol))
    section = {
        "task": task,
        "exporter": info.exporter,
        "exporter_fallback_reason": info.fallback_reason,
        "opset": info.opset,
        "attn_implementation": built.module.model.config._attn_implementation,
        **io,
        "image_size": [h, w],
        **target_section,
    }
    return section, validation


def _export_decoder(cfg: ExportConfig, model_dir: Path, spec, task: str, atol: float, tmp: Path, steps, prior: dict | None = None) -> tuple[dict, dict]:
    from edgekit.calibration.text import sample_texts
    from edgekit.export.decoder import build_decoder, dynamic_shapes, example_kwargs
    from edgekit.export.validate import ValidationReport, compare_masked_batch, decoder_cases, greedy_parity, require_pass, stateful_compare
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.ort_backend import OrtSession
    from edgekit.runtimes.torch_backend import TorchSession, weight_files

    with steps.step("load model"):
        built = build_decoder(model_dir, spec)
    shapes_for_export, axes = dynamic_shapes(built)
    lay = io = built.layout
    weight_bytes = sum(p.stat().st_size for p in weight_files(model_dir))
    reference = TorchSession(built.module, built.input_names, built.output_names, weight_bytes, past_names=lay.past_names())
    prompts = [" ".join(t.split()[:n]) for t, n in zip(sample_texts(3), (5, 9, 13))]
    attention = "standard"
    if cfg.target == "ort" and cfg.gqa:
        from edgekit.export.gqa import usable

        if prior is not None and prior["export"].get("attention") == "GroupQueryAttention":
            attention = "GroupQueryAttention"  # that artifact's graph is already the ORT one: reuse it
            io = lay = dataclasses.replace(lay, uses_position_ids=prior["export"]["cache"]["uses_position_ids"])
        elif usable(built.model):
            attention, prior = "GroupQueryAttention", None  # an ORT graph of its own, exported from the source
        else:
            log.info("%s: attention stays unfused (GroupQueryAttention covers llama-style layers with full rotary)", spec.family)
    if cfg.target == "openvino":  # the IR comes straight from PyTorch (export/openvino_ir.py); a prior ONNX lends only its validation
        from edgekit.export.onnx_export import ConvertInfo

        info, validation = ConvertInfo("openvino.convert_model", None), prior["validation"] if prior is not None else None
    elif prior is None:
        if attention == "GroupQueryAttention":
            from edgekit.export.gqa import gqa_attention

            with gqa_attention(built.module, built.max_length):
                info = _convert_and_check(built, example_kwargs(built), axes, tmp, cfg, steps, shapes_for_export)
            io = lay = _graph_layout(tmp / "model.onnx", lay)
        else:
            info = _convert_and_check(built, example_kwargs(built), axes, tmp, cfg, steps, shapes_for_export)
        with steps.step("validate against PyTorch"):
            candidate = OrtSession(tmp / "model.onnx", SessionOptions())
            report = ValidationReport(atol=atol)
            padding = "right" if attention == "GroupQueryAttention" else "left"
            for name, inputs in decoder_cases(built.tokenizer, built.layout, reference, padding_side=padding):
                compare_masked_batch(reference, candidate, inputs, atol, report, name)
            require_pass(report)
            generation = greedy_parity(built.model, built.tokenizer, candidate, io, prompts, new_tokens=8)
        validation = {"runtime": "onnxruntime", **report.as_dict(), "greedy_generation": generation}
    else:
        info, validation = _prior_info(prior, cfg, tmp)
    target_section: dict = {}
    if cfg.target == "openvino":
        cases = decoder_cases(built.tokenizer, io, reference)

        def validate_ir(ov_session, ov_atol):
            ov_report = ValidationReport(atol=ov_atol)
            stateful_compare(reference, ov_session, io, cases, ov_report)
            return ov_report

        def parity(ov_session):
            return greedy_parity(built.model, built.tokenizer, ov_session, io, prompts, new_tokens=8, strict=cfg.precision == "fp32")

        cache = {"kv_heads": lay.kv_heads, "head_dim": lay.head_dim}
        weight_only = cfg.precision in ("int8", "int4")
        from edgekit.export.openvino_ir import torch_decoder_to_ir

        target_section, validation = _to_openvino(
            cfg, tmp, steps, validation, validate_ir, None if weight_only else parity, cache,
            convert=lambda xml: torch_decoder_to_ir(model_dir, spec, xml, cfg.precision == "fp16"), atol=atol,
        )
        if weight_only:
            target_section, validation = _decoder_weight_only(cfg, tmp, steps, built, prompts, validation, target_section, cache)
    elif cfg.target == "ort" and cfg.precision in ("int8", "int4"):
        target_section, validation = _decoder_weight_only(cfg, tmp, steps, built, prompts, validation, {}, None)
    eos = built.model.generation_config.eos_token_id
    shapes = {n: [axes[n].get(0, "batch"), axes[n].get(1, "sequence")] for n in ("input_ids", "attention_mask", *(["position_ids"] if lay.uses_position_ids else []))}
    shapes.update({n: ["batch", lay.kv_heads, "past_sequence", lay.head_dim] for n in lay.past_names()})
    shapes.update({n: ["batch", lay.kv_heads, "total_sequence", lay.head_dim] for n in lay.present_names()})
    shapes["logits"] = ["batch", "sequence", int(built.config.vocab_size)]
    section = {
        "task": task,
        "exporter": info.exporter,
        "exporter_fallback_reason": info.fallback_reason,
        "opset": info.opset,
        "attn_implementation": built.model.config._attn_implementation,
        **_io_section(built, shapes, drop=() if lay.uses_position_ids else ("position_ids",)),
        "cache": {"num_layers": lay.num_layers, "kv_heads": lay.kv_heads, "head_dim": lay.head_dim, "uses_position_ids": lay.uses_position_ids, "layout": "batch, kv_heads, sequence, head_dim"},
        "attention": attention,
        "padding": "right or none" if attention == "GroupQueryAttention" else "left, right or none",
        "eos_token_ids": list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else []),
        "max_length": built.max_length,
        **target_section,
    }
    if cfg.target == "trt":
        from edgekit.export.tensorrt import trt_decoder_export

        trt_section, validation = trt_decoder_export(cfg, built, reference, tmp, steps, section["inputs"], prompts, validation)
        section.update(trt_section)
    if target_section.get("stateful"):
        section["inputs"] = [i for i in section["inputs"] if not i["name"].startswith("past_key_values.")]
        section["outputs"] = [o for o in section["outputs"] if o["name"] == "logits"]
    return section, validation


WEIGHT_ONLY_PARITY_TOKENS = 32


def _decoder_weight_only(cfg: ExportConfig, tmp: Path, steps, built, prompts: list[str], validation: dict, section: dict, cache: dict | None) -> tuple[dict, dict]:
    """Weight-only int8/int4 of the validated decoder in ``tmp`` (ONNX for ort, IR for openvino);
    greedy generation is compared with transformers fp32 and the difference reported."""
    from edgekit.export.validate import greedy_parity

    with steps.step(f"weight-only {cfg.precision}"):
        if cfg.target == "ort":
            from edgekit.compress.weight_only import ort_weight_only
            from edgekit.runtimes.base import SessionOptions
            from edgekit.runtimes.ort_backend import OrtSession

            src = tmp / "model.fp32.onnx"
            (tmp / "model.onnx").rename(src)
            quant = ort_weight_only(src, tmp / "model.onnx", cfg.precision)
            src.unlink()
            session = OrtSession(tmp / "model.onnx", SessionOptions())
            runtime = "onnxruntime"
        else:
            import openvino as ov

            from edgekit.compress.weight_only import openvino_weight_only
            from edgekit.export.openvino_ir import replace_ir
            from edgekit.runtimes.base import SessionOptions
            from edgekit.runtimes.openvino_backend import OpenVINOSession

            xml = tmp / "model.xml"
            compressed, quant = openvino_weight_only(ov.Core().read_model(str(xml)), cfg.precision)
            replace_ir(compressed, xml)
            del compressed
            session = OpenVINOSession(xml, SessionOptions(), "f32", cache)
            runtime = "openvino"
            section = {**section, "weights": cfg.precision}
    with steps.step("compare greedy generation with fp32"):
        generation = greedy_parity(built.model, built.tokenizer, session, built.layout, prompts, new_tokens=WEIGHT_ONLY_PARITY_TOKENS, strict=False)
    if not generation["identical"]:
        log.warning("weight-only %s: greedy tokens match fp32 on %d of %d prompts (matching prefixes %s of %d tokens)", cfg.precision, generation["identical_prompts"], generation["prompts"], generation["matching_prefix"], WEIGHT_ONLY_PARITY_TOKENS)
    return {**section, "quantization": quant}, {"runtime": runtime, "passed": True, "greedy_generation": generation, "fp32": validation}


def _to_openvino(cfg: ExportConfig, tmp: Path, steps, onnx_validation: dict | None, validate_ir, parity=None, cache: dict | None = None, convert=None, atol: float | None = None) -> tuple[dict, dict]:
    """Convert the validated ONNX in ``tmp`` to IR (or run ``convert(xml_path)``: decoders come from
    PyTorch), validate the IR against PyTorch, drop the ONNX."""
    from edgekit.export.openvino_ir import onnx_to_ir
    from edgekit.export.validate import require_pass
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.openvino_backend import OpenVINOSession

    with steps.step("convert to OpenVINO IR"):
        info = convert(tmp / "model.xml") if convert else onnx_to_ir(tmp / "model.onnx", tmp / "model.xml", cfg.precision == "fp16")
    with steps.step("validate OpenVINO against PyTorch"):
        atol = atol if atol is not None else onnx_validation["atol"]
        atol = max(atol, FP16_WEIGHTS_ATOL) if cfg.precision == "fp16" else atol
        session = OpenVINOSession(tmp / "model.xml", SessionOptions(), "f32", cache)
        report = validate_ir(session, atol)
        require_pass(report)
        validation = {"runtime": "openvino", "inference_precision": session.precision, **report.as_dict(), "onnx": onnx_validation}
        if parity is not None:
            validation["greedy_generation"] = parity(session)
    (tmp / "model.onnx").unlink(missing_ok=True)
    section = {"model_file": "model.xml", "format": "openvino-ir", "inference_precision": "f32", **info}
    return section, validation


FP16_WEIGHTS_ATOL = 2e-2  # fp16 weights carry ~3 significant digits; outputs of order 1 move by ~1e-3..1e-2


def _onnx_artifact(folder: Path) -> dict | None:
    """The manifest of an edgekit ONNX export artifact in ``folder``, else None."""
    from edgekit.artifacts import MANIFEST, read_manifest

    if not (folder / MANIFEST).is_file():
        return None
    manifest = read_manifest(folder)
    export = manifest.get("export", {})
    files = (export.get("model_files") or {"model": "model.onnx"}).values()
    if not all(str(name).endswith(".onnx") and (folder / name).is_file() for name in files):
        return None
    if manifest.get("stage") != "export" or export.get("format", "onnx") != "onnx" or export.get("precision", "fp32") != "fp32":
        return None
    return manifest


def _prior_info(prior: dict, cfg: ExportConfig, tmp: Path):
    """Take the graph(s) of the prior ONNX artifact ``cfg.model`` into ``tmp``, with its converter
    info and validation. Called only where that graph is used (a decoder going to OpenVINO or to
    the fused ORT graph is exported again from its source, so nothing is copied for it)."""
    from edgekit.export.onnx_export import ConvertInfo

    for name in prior["export"].get("model_files", {"model": "model.onnx"}).values():
        shutil.copy2(Path(cfg.model).expanduser().resolve() / name, tmp / name)
    export = prior["export"]
    return ConvertInfo(export["exporter"], export["opset"], export.get("exporter_fallback_reason")), prior["validation"]


def _export_seq2seq(cfg: ExportConfig, model_dir: Path, spec, task: str, atol: float, tmp: Path, steps, prior: dict | None = None) -> tuple[dict, dict]:
    """Encoder graph (with the cross-attention cache) and decoder graph; each validated against
    PyTorch, then greedy generation compared token for token with transformers."""
    from edgekit.export.seq2seq import build_seq2seq, decoder_example, decoder_shapes, encoder_example, encoder_shapes
    from edgekit.export.validate import ValidationReport, require_pass, seq2seq_cases, seq2seq_compare, seq2seq_greedy_parity
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.ort_backend import OrtSession
    from edgekit.runtimes.torch_backend import seq2seq_torch_session, weight_files

    with steps.step("load model"):
        built = build_seq2seq(model_dir, spec)
    weight_bytes = sum(p.stat().st_size for p in weight_files(model_dir))
    references = {part: seq2seq_torch_session(built, part, weight_bytes) for part in ("encoder", "decoder")}
    cases = seq2seq_cases(built, references["encoder"], cfg.seed)
    files = {"encoder": "encoder.onnx", "decoder": "decoder.onnx"}
    if prior is None:
        infos = {}
        for part, module, example, (shapes, axes) in (
            ("encoder", built.encoder, encoder_example(built.model, spec), encoder_shapes(built)),
            ("decoder", built.decoder, decoder_example(built), decoder_shapes(built)),
        ):
            names = built.encoder_names() if part == "encoder" else built.decoder_names()
            infos[part] = _convert_and_check(_Named(module, *names), example, axes, tmp, cfg, steps, shapes, files[part])
        info = infos["decoder"]
        with steps.step("validate against PyTorch"):
            sessions = {part: OrtSession(tmp / files[part], SessionOptions()) for part in files}
            report = ValidationReport(atol=atol)
            seq2seq_compare(references, sessions, cases, built.io, report)
            require_pass(report)
            generation = seq2seq_greedy_parity(built, sessions, cases, new_tokens=8)
        validation = {"runtime": "onnxruntime", **report.as_dict(), "greedy_generation": generation}
    else:
        info, validation = _prior_info(prior, cfg, tmp)
    section: dict = {}
    if cfg.target == "openvino":
        from edgekit.export.openvino_ir import onnx_to_ir, stateful_seq2seq_decoder
        from edgekit.export.validate import seq2seq_stateful_compare
        from edgekit.runtimes.openvino_backend import OpenVINOSession

        with steps.step("convert to OpenVINO IR"):
            for part in ("encoder", "decoder"):
                ir = onnx_to_ir(tmp / files[part], tmp / f"{part}.xml", cfg.precision == "fp16")
                (tmp / files[part]).unlink()
                files[part] = f"{part}.xml"
        with steps.step("validate OpenVINO against PyTorch"):
            ov_atol = max(atol, FP16_WEIGHTS_ATOL) if cfg.precision == "fp16" else atol
            sessions = {part: OpenVINOSession(tmp / files[part], SessionOptions(), "f32") for part in files}
            ov_report = ValidationReport(atol=ov_atol)
            seq2seq_compare(references, sessions, cases, built.io, ov_report)
            require_pass(ov_report)
        with steps.step("keep the decoder's self-attention cache inside (stateful)"):
            del sessions
            stateful_seq2seq_decoder(tmp / files["decoder"], dict(zip(built.io.self_names("past_key_values"), built.io.self_names("present"))))
            sessions = {part: OpenVINOSession(tmp / files[part], SessionOptions(), "f32") for part in files}
            seq2seq_stateful_compare(references, sessions["decoder"], cases, built.io, ov_report)
            require_pass(ov_report)
            ov_validation = {"runtime": "openvino", "inference_precision": "f32", **ov_report.as_dict(), "onnx": validation}
            if cfg.precision == "fp32":
                ov_validation["greedy_generation"] = seq2seq_greedy_parity(built, sessions, cases, new_tokens=8)
            validation = ov_validation
        section = {"format": "openvino-ir", "inference_precision": "f32", **ir, "stateful": True, "kv_cache_precision": "f32"}
    if cfg.precision in WEIGHT_ONLY:
        section, validation = _seq2seq_weight_only(cfg, tmp, steps, built, cases, files, validation, section)
    eos = built.model.generation_config.eos_token_id
    enc_in, enc_out = built.encoder_names()
    dec_in, dec_out = built.decoder_names()
    return {
        "task": task,
        "exporter": info.exporter,
        "exporter_fallback_reason": info.fallback_reason,
        "opset": info.opset,
        "attn_implementation": built.model.config._attn_implementation,
        "model_file": None,
        "model_files": files,
        "graphs": {"encoder": {"inputs": enc_in, "outputs": enc_out}, "decoder": {"inputs": dec_in, "outputs": dec_out}},
        "seq2seq": built.io.as_dict(),
        "decoder_start_token_id": built.start_token,
        "eos_token_ids": list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else []),
        "max_length": int(getattr(built.config, "max_target_positions", None) or getattr(built.config, "max_position_embeddings", None) or 512),
        "max_source_length": int(built.config.max_position_embeddings) if spec.text_encoder and getattr(built.config, "max_position_embeddings", None) else None,
        **section,
    }, validation


def _seq2seq_weight_only(cfg: ExportConfig, tmp: Path, steps, built, cases: dict, files: dict[str, str], validation: dict, section: dict) -> tuple[dict, dict]:
    """Weight-only int8/int4 of both validated graphs of an encoder-decoder (ONNX for ort, IR for
    openvino); greedy generation is compared with transformers fp32 and the difference reported."""
    from edgekit.export.validate import seq2seq_greedy_parity
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.generate import GenerationConfig

    quant: dict[str, dict] = {}
    with steps.step(f"weight-only {cfg.precision}"):
        for part, name in files.items():
            if cfg.target == "ort":
                from edgekit.compress.weight_only import ort_weight_only

                src = tmp / f"{part}.fp32.onnx"
                (tmp / name).rename(src)
                quant[part] = ort_weight_only(src, tmp / name, cfg.precision)
                src.unlink()
            else:
                import openvino as ov

                from edgekit.compress.weight_only import openvino_weight_only
                from edgekit.export.openvino_ir import replace_ir

                compressed, quant[part] = openvino_weight_only(ov.Core().read_model(str(tmp / name)), cfg.precision)
                replace_ir(compressed, tmp / name)
                del compressed
    if cfg.target == "ort":
        from edgekit.runtimes.ort_backend import OrtSession

        sessions = {part: OrtSession(tmp / name, SessionOptions()) for part, name in files.items()}
        runtime = "onnxruntime"
    else:
        from edgekit.runtimes.openvino_backend import OpenVINOSession

        sessions = {part: OpenVINOSession(tmp / name, SessionOptions(), "f32") for part, name in files.items()}
        runtime = "openvino"
        section = {**section, "weights": cfg.precision}
    with steps.step("compare greedy generation with fp32"):
        positions = int(getattr(built.config, "max_target_positions", 0) or 1 << 30)
        cfg_gen = GenerationConfig(max_new_tokens=min(WEIGHT_ONLY_PARITY_TOKENS, positions - 1))
        generation = seq2seq_greedy_parity(built, sessions, cases, new_tokens=cfg_gen.max_new_tokens, strict=False, cfg=cfg_gen)
    if not generation["identical"]:
        log.warning("weight-only %s: greedy tokens match fp32 on %d of %d inputs (matching prefixes %s)", cfg.precision, generation["identical_inputs"], generation["inputs"], generation["matching_prefix"])
    return {**section, "quantization": quant}, {"runtime": runtime, "passed": True, "greedy_generation": generation, "fp32": validation}


class _Named:
    """Marks which inputs/outputs a module has, for _convert_and_check."""

    def __init__(self, module, input_names, output_names):
        self.module, self.input_names, self.output_names = module, input_names, output_names


def _graph_layout(path: Path, layout):
    """The cache layout with ``uses_position_ids`` as the exported graph has it (a fused graph
    derives positions from the mask, and the exporter drops the unused input)."""
    import dataclasses

    import onnx

    names = {i.name for i in onnx.load(str(path), load_external_data=False).graph.input}
    return dataclasses.replace(layout, uses_position_ids=layout.uses_position_ids and "position_ids" in names)
