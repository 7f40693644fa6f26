"""Text encoders (BERT family, sentence-transformers): token ids in, ``last_hidden_state`` (and the
pooled, normalised ``sentence_embedding``) out; one stateless graph."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.export.job import ExportJob, io_section, reference_session
from edgekit.export.kinds._graph import check_graph, export_graph
from edgekit.models.tokenizer import check_tokenizer

EXAMPLE_TEXTS = ["Edge devices run small models.", "A second, longer example sentence for the export."]


def check(cfg: Any, target: Any, spec: Any = None) -> None:
    check_graph(cfg, target)
    check_tokenizer(
        Path(cfg.model), {"INT8 calibration on text (--calib)": cfg.calib, "--eval-data": cfg.eval_data}
    )


def export(job: ExportJob) -> tuple[dict, dict]:
    from edgekit.export.validate import encoder_cases
    from edgekit.models.encoder import build_encoder, dynamic_axes

    with job.steps.step("load model"):
        built = build_encoder(job.model_dir, job.spec, job.task)
    reference = reference_session(job, built)
    cases = encoder_cases(built.tokenizer, built.input_names, built.max_length)
    example = built.tokenizer(EXAMPLE_TEXTS, padding=True, return_tensors="pt")
    kwargs = {name: example[name] for name in built.input_names}
    hidden = built.config.hidden_size
    shapes = {n: ["batch", "sequence"] for n in built.input_names}
    shapes.update(
        {"last_hidden_state": ["batch", "sequence", hidden], "sentence_embedding": ["batch", hidden]}
    )
    io = io_section(built, shapes)
    axes = dynamic_axes(built.input_names, built.output_names)
    info, target_section, validation = export_graph(job, built, reference, cases, kwargs, axes, io)
    pooling = built.pooling
    section = {
        "task": "sentence-embedding" if pooling else "feature-extraction",
        "exporter": info.exporter,
        "exporter_fallback_reason": info.fallback_reason,
        "opset": info.opset,
        "attn_implementation": built.module.model.config._attn_implementation,
        **io,
        "pooling": {"mode": pooling.mode, "normalize": pooling.normalize} if pooling else None,
        "max_length": built.max_length,
        **target_section,
    }
    return section, validation
