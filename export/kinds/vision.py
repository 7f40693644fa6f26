"""Vision encoders (ViT, DeiT): ``pixel_values`` in, ``last_hidden_state`` (+ ``pooler_output``) out;
one stateless graph, validated on seeded pixels, calibrated on images."""

from __future__ import annotations

from typing import Any

from edgekit.export.job import ExportJob, reference_session
from edgekit.export.kinds._graph import check_graph, export_graph


def check(cfg: Any, target: Any, spec: Any = None) -> None:
    check_graph(cfg, target)


def export(job: ExportJob) -> tuple[dict, dict]:
    import torch

    from edgekit.models.vision import build_vision, vision_axes, vision_cases

    with job.steps.step("load model"):
        built = build_vision(job.model_dir, job.spec)
    reference = reference_session(job, built)
    cases = vision_cases(built, job.cfg.seed)
    kwargs = {"pixel_values": torch.from_numpy(cases[1][1]["pixel_values"][:2])}
    h, w = built.image_size
    hidden = built.config.hidden_size
    io = {
        "inputs": [{"name": "pixel_values", "shape": ["batch", built.channels, h, w], "dtype": "float32"}],
        "outputs": [
            {
                "name": n,
                "shape": ["batch", "tokens", hidden] if n == "last_hidden_state" else ["batch", hidden],
                "dtype": "float32",
            }
            for n in built.output_names
        ],
    }
    info, target_section, validation = export_graph(
        job, built, reference, cases, kwargs, vision_axes(built.output_names), io
    )
    section = {
        "task": job.task,
        "exporter": info.exporter,
        "exporter_fallback_reason": info.fallback_reason,
        "opset": info.opset,
        "attn_implementation": built.module.model.config._attn_implementation,
        **io,
        "image_size": [h, w],
        **target_section,
    }
    return section, validation
