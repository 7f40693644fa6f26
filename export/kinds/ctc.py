"""CTC speech encoders (wav2vec2, HuBERT, WavLM): ``input_values`` (+ ``attention_mask``) in,
``logits`` out; one stateless graph with a dynamic number of samples, validated on seeded
waveforms of several lengths, calibrated on WAV files."""

from __future__ import annotations

from typing import Any

from edgekit.export.job import ExportJob, reference_session
from edgekit.export.kinds._graph import check_graph, export_graph


def check(cfg: Any, target: Any, spec: Any = None) -> None:
    check_graph(cfg, target)


def export(job: ExportJob) -> tuple[dict, dict]:
    import torch

    from edgekit.models.ctc import build_ctc, ctc_axes, ctc_cases

    with job.steps.step("load model"):
        built = build_ctc(job.model_dir, job.spec)
    reference = reference_session(job, built)
    cases = ctc_cases(built, job.cfg.seed)
    kwargs = {k: torch.from_numpy(v) for k, v in cases[-1][1].items()}
    io = {
        "inputs": [
            {"name": n, "shape": ["batch", "samples"], "dtype": "float32" if n == "input_values" else "int64"}
            for n in built.input_names
        ],
        "outputs": [
            {"name": "logits", "shape": ["batch", "frames", int(built.config.vocab_size)], "dtype": "float32"}
        ],
    }
    info, target_section, validation = export_graph(
        job, built, reference, cases, kwargs, ctc_axes(built.input_names), io
    )
    section = {
        "task": job.task,
        "exporter": info.exporter,
        "exporter_fallback_reason": info.fallback_reason,
        "opset": info.opset,
        "attn_implementation": built.module.model.config._attn_implementation,
        **io,
        "ctc": {
            "sampling_rate": built.sampling_rate,
            "frame_samples": built.frame_samples,
            "blank_token_id": built.blank_token_id,
            "vocab_size": int(built.config.vocab_size),
        },
        **target_section,
    }
    return section, validation
