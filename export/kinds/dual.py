"""Image-text dual encoders (CLIP family): two stateless graphs, ``text/`` and ``vision/``, each
exported, validated against PyTorch and handed to the target's ``graph`` role on its own, so every
target that takes an encoder takes both towers, INT8 included.

INT8 calibrates each tower on its own modality: the vision tower on ``--calib`` (images), the text
tower on ``--calib-text`` (texts). With ``--eval-data`` image-text pairs, each INT8 tower is judged
(and ``--max-drop`` guarded) on zero-shot top-1 agreement with fp32, the other tower held at fp32.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgekit.calibration.pairs import is_pairs
from edgekit.errors import InputError
from edgekit.export.job import ExportJob, reference_session
from edgekit.export.kinds._graph import check_graph, export_graph
from edgekit.models.tokenizer import check_tokenizer

EXAMPLE_TEXTS = ["a photo of a cat", "a diagram of a small model running on a phone"]


def check(cfg: Any, target: Any, spec: Any = None) -> None:
    check_graph(cfg, target)
    check_tokenizer(Path(cfg.model), {"INT8 calibration of the text tower (--calib-text)": cfg.calib_text})
    if cfg.precision == "int8" and cfg.calib_text is None:
        raise InputError(
            "INT8 of an image-text model calibrates the text tower on text, and no --calib-text was given",
            "pass --calib with images for the vision tower and --calib-text with captions for the text tower",
        )
    if cfg.calib_text is not None and cfg.precision != "int8":
        raise InputError(
            f"--calib-text applies only to --precision int8, not {cfg.precision}",
            "drop it, or add --precision int8",
        )
    if cfg.calib_text is not None:
        from edgekit.calibration.dataset import check_calib_path, is_image_folder
        from edgekit.export.options import check_text_data

        path = check_calib_path(cfg.calib_text)
        if is_image_folder(path):
            raise InputError(
                f"--calib-text '{path}' holds images",
                "pass captions: a .txt, .jsonl or a folder of .txt files",
            )
        check_text_data(path, cfg.encoding)
    if cfg.precision == "int8" and cfg.calib is not None:
        from edgekit.compress.quality import require_images

        require_images(cfg.calib, "--calib")


def tower_job(job: ExportJob, tower: Any) -> ExportJob:
    """The job of one tower: its own staging subfolder, its calibration data (text padded to no
    more than the tower's positions), and the tower of a prior ONNX artifact where ``--model`` is one."""
    cfg, name = job.cfg, tower.name
    calib = cfg.calib_text if name == "text" else cfg.calib
    eval_data = cfg.eval_data if name == "vision" else None
    seq_lens = (
        tuple(sorted({min(s, tower.max_length) for s in cfg.seq_lens})) if name == "text" else cfg.seq_lens
    )
    sub_cfg = dataclasses.replace(cfg, calib=calib, eval_data=eval_data, calib_text=None, seq_lens=seq_lens)
    prior = None
    if job.prior is not None:
        export, validation = job.prior["export"], job.prior["validation"]
        prior = {**job.prior, "export": export["towers"][name], "validation": validation["towers"][name]}
        sub_cfg = dataclasses.replace(sub_cfg, model=Path(cfg.model).expanduser().resolve() / name)
    (job.tmp / name).mkdir()
    return job.replace(cfg=sub_cfg, tmp=job.tmp / name, prior=prior)


def _export_tower(job: ExportJob, tower: Any) -> tuple[dict, dict]:
    import torch

    from edgekit.export.validate import encoder_cases
    from edgekit.models.vision import vision_axes, vision_cases

    reference = reference_session(job, tower)
    if tower.name == "text":
        cases = encoder_cases(tower.tokenizer, tower.input_names, tower.max_length)
        example = tower.tokenizer(
            EXAMPLE_TEXTS, padding=True, truncation=True, max_length=tower.max_length, return_tensors="pt"
        )
        kwargs = {name: example[name] for name in tower.input_names}
        axes = {name: {0: "batch", 1: "sequence"} for name in tower.input_names}
        axes["text_embeds"] = {0: "batch"}
        inputs = [{"name": n, "shape": ["batch", "sequence"], "dtype": "int64"} for n in tower.input_names]
    else:
        cases = vision_cases(tower, job.cfg.seed)
        kwargs = {"pixel_values": torch.from_numpy(cases[1][1]["pixel_values"][:2])}
        axes = vision_axes(tower.output_names)
        h, w = tower.image_size
        inputs = [{"name": "pixel_values", "shape": ["batch", tower.channels, h, w], "dtype": "float32"}]
    outputs = [{"name": tower.output_names[0], "shape": ["batch", tower.embed_dim], "dtype": "float32"}]
    io = {"inputs": inputs, "outputs": outputs}
    info, target_section, validation = export_graph(job, tower, reference, cases, kwargs, axes, io)
    section = {
        "exporter": info.exporter,
        "exporter_fallback_reason": info.fallback_reason,
        "opset": info.opset,
        **io,
        "model_file": f"{tower.name}/" + target_section.get("model_file", "model.onnx"),
        **(
            {"max_length": tower.max_length}
            if tower.name == "text"
            else {"image_size": list(tower.image_size)}
        ),
        **{k: v for k, v in target_section.items() if k != "model_file"},
    }
    return section, validation


def export(job: ExportJob) -> tuple[dict, dict]:
    from edgekit.models.dual import build_dual

    with job.steps.step("load model"):
        built = build_dual(job.model_dir, job.spec)
    if job.cfg.precision == "int8" and job.cfg.eval_data is not None and is_pairs(job.cfg.eval_data):
        from edgekit.calibration.pairs import load_pairs
        from edgekit.models.dual import attach_eval_pairs

        with job.steps.step("fp32 embeddings of the image-text pairs (the accuracy guard's candidates)"):
            references = {tower.name: reference_session(job, tower) for tower in built.towers}
            pairs = load_pairs(job.cfg.eval_data, job.cfg.encoding)
            attach_eval_pairs(built, references, pairs, job.model_dir, job.spec.text_padding)
    towers, validations = {}, {}
    for tower in built.towers:
        towers[tower.name], validations[tower.name] = _export_tower(tower_job(job, tower), tower)
    first = towers["vision"]
    section = {
        "task": job.task,
        "exporter": first["exporter"],
        "opset": first["opset"],
        "format": first.get("format", "onnx"),
        "model_file": None,
        "model_files": {name: t["model_file"] for name, t in towers.items()},
        "towers": towers,
        "embed_dim": built.text.embed_dim,
        "scoring": job.spec.scoring,
        "text_padding": job.spec.text_padding,
        "logit_scale": built.logit_scale,
        "logit_bias": built.logit_bias,
        "max_length": built.text.max_length,
        "image_size": list(built.vision.image_size),
    }
    if all("tensorrt" in t for t in towers.values()):  # what the TensorRT backend's reads() looks at
        section["tensorrt"] = {
            "engine_built": all(t["tensorrt"].get("engine_built") for t in towers.values())
        }
    return section, {"towers": validations, "runtime": validations["vision"].get("runtime")}
