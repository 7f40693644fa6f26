"""KV-cache decoders (Llama/SmolLM2, Qwen2, Mistral, Phi-3, GPT-2, Gemma, Gemma3): one graph for the
first step and every later one, past tensors in, present tensors out.

The target decides how the graph is made (``TargetBase.decoder``): the standard ONNX graph this
file converts and validates (``DecoderCase.standard_graph``), ONNX Runtime's fused attention, or an
OpenVINO IR straight from PyTorch; this file then writes the section every decoder artifact has.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.export.job import ExportJob, convert_and_check, io_section, prior_info, reference_session
from edgekit.export.options import PARITY_TOKENS, WEIGHT_ONLY_PARITY_TOKENS, check_cached
from edgekit.models.cache_io import eos_token_ids
from edgekit.models.tokenizer import check_tokenizer

log = logging.getLogger("edgekit.export")


def check(cfg: Any, target: Any, spec: Any = None) -> None:
    check_cached(cfg, target.decoder_precisions, "decoders", target.decoder_hint)
    check_tokenizer(Path(cfg.model))


@dataclass
class DecoderCase:
    """What a target's ``decoder`` role works with."""

    job: ExportJob
    built: Any
    reference: Any
    prompts: list[str]
    io: Any
    """The cache layout (edgekit.models.cache_io.DecoderIO) of the graph as exported."""
    axes: dict
    shapes_for_export: dict
    attention: str = "standard"
    """``standard``, or ``GroupQueryAttention`` (ONNX Runtime's fused op) when a target chose it."""
    rewrites: dict | None = None
    """What a target's graph rewrite changed (``standard_graph(rewrite=...)``)."""

    def standard_graph(self, attention_context=None, rewrite=None) -> tuple[Any, dict]:
        """Convert (inside ``attention_context`` when given) and validate on ONNX Runtime against
        PyTorch: a prefill, a step fed the cache, a padded batch, and greedy tokens equal to
        transformers' on the prompts. ``rewrite(path) -> dict`` changes a fused graph before it is
        validated (export/ort_fusions.py). A prior ONNX artifact's graph is taken as it is."""
        from edgekit.export.validate import greedy_parity
        from edgekit.models.decoder import example_kwargs

        job, built = self.job, self.built
        if job.prior is not None:
            self.rewrites = job.prior["export"].get("graph_rewrites")
            return prior_info(job)
        if attention_context is not None:
            with attention_context:
                info = convert_and_check(job, built, example_kwargs(built), self.axes, self.shapes_for_export)
            self.io = graph_layout(job.tmp / "model.onnx", self.io)
            if rewrite is not None:
                with job.steps.step("fuse for ONNX Runtime"):
                    self.rewrites = rewrite(job.tmp / "model.onnx")
        else:
            info = convert_and_check(job, built, example_kwargs(built), self.axes, self.shapes_for_export)
        with job.steps.step("validate against PyTorch"):
            candidate, report = self.validate_onnx(job.tmp / "model.onnx")
            generation = greedy_parity(
                built.model, built.tokenizer, candidate, self.io, self.prompts, new_tokens=PARITY_TOKENS
            )
        return info, {"runtime": "onnxruntime", **report.as_dict(), "greedy_generation": generation}

    def validate_onnx(self, path: Path) -> tuple[Any, Any]:
        """The graph at ``path`` on ONNX Runtime against PyTorch: a prefill, a step fed the cache and
        a padded batch, each within the atol (else ValidationError). Its session and the report."""
        from edgekit.export.validate import (
            ValidationReport,
            compare_masked_batch,
            decoder_cases,
            require_pass,
        )
        from edgekit.runtimes.base import SessionOptions
        from edgekit.runtimes.ort_backend import OrtSession

        candidate = OrtSession(path, SessionOptions())
        report = ValidationReport(atol=self.job.atol)
        padding = "right" if self.attention == "GroupQueryAttention" else "left"
        for name, inputs in decoder_cases(
            self.built.tokenizer, self.built.layout, self.reference, padding_side=padding
        ):
            compare_masked_batch(self.reference, candidate, inputs, self.job.atol, report, name)
        require_pass(report)
        return candidate, report

    def parity(self, session, new_tokens: int = PARITY_TOKENS, strict: bool = True) -> dict:
        """Greedy generation on ``session`` against transformers' on the prompts."""
        from edgekit.export.validate import greedy_parity

        return greedy_parity(
            self.built.model,
            self.built.tokenizer,
            session,
            self.io,
            self.prompts,
            new_tokens=new_tokens,
            strict=strict,
        )

    def weight_only_parity(self, session, precision: str) -> dict:
        """Greedy tokens of a weight-only graph against fp32, reported (and warned about), not required."""
        with self.job.steps.step("compare greedy generation with fp32"):
            generation = self.parity(session, WEIGHT_ONLY_PARITY_TOKENS, strict=False)
        if not generation["identical"]:
            log.warning(
                "%s: greedy tokens match fp32 on %d of %d prompts (matching prefixes %s of %d tokens)",
                precision if precision in ("bf16", "fp16") else f"weight-only {precision}",
                generation["identical_prompts"],
                generation["prompts"],
                generation["matching_prefix"],
                WEIGHT_ONLY_PARITY_TOKENS,
            )
        return generation

    def io_section(self) -> dict:
        """The manifest's inputs and outputs of the graph as exported."""
        lay, built = self.io, self.built
        names = ("input_ids", "attention_mask", *(["position_ids"] if lay.uses_position_ids else []))
        shapes = {n: [self.axes[n].get(0, "batch"), self.axes[n].get(1, "sequence")] for n in names}
        shapes.update({n: ["batch", lay.kv_heads, "past_sequence", lay.head_dim] for n in lay.past_names()})
        shapes.update(
            {n: ["batch", lay.kv_heads, "total_sequence", lay.head_dim] for n in lay.present_names()}
        )
        shapes["logits"] = ["batch", "sequence", int(built.config.vocab_size)]
        return io_section(built, shapes, drop=() if lay.uses_position_ids else ("position_ids",))


def export(job: ExportJob) -> tuple[dict, dict]:
    from edgekit.calibration._sample import greedy_prompts
    from edgekit.models.decoder import build_decoder, dynamic_shapes

    with job.steps.step("load model"):
        built = build_decoder(job.model_dir, job.spec)
    shapes_for_export, axes = dynamic_shapes(built)
    prompts = greedy_prompts()
    case = DecoderCase(
        job, built, reference_session(job, built), prompts, built.layout, axes, shapes_for_export
    )
    info, target_section, validation = job.target.decoder(job, case)
    lay = case.io
    gqa = case.attention == "GroupQueryAttention"
    section = {
        "task": job.task,
        "exporter": info.exporter,
        "exporter_fallback_reason": info.fallback_reason,
        "opset": info.opset,
        "attn_implementation": built.model.config._attn_implementation,
        **case.io_section(),
        "cache": {
            "num_layers": lay.num_layers,
            "kv_heads": lay.kv_heads,
            "head_dim": lay.head_dim,
            "uses_position_ids": lay.uses_position_ids,
            "layout": "batch, kv_heads, sequence, head_dim",
        },
        "attention": case.attention,
        **({"graph_rewrites": case.rewrites} if case.rewrites else {}),
        "padding": "right or none" if gqa else "left, right or none",
        "eos_token_ids": list(eos_token_ids(built.model.generation_config.eos_token_id)),
        "max_length": built.max_length,
        **target_section,
    }
    if target_section.get("stateful"):  # the cache lives inside: no past inputs, no present outputs
        section["inputs"] = [i for i in section["inputs"] if not i["name"].startswith("past_key_values.")]
        section["outputs"] = [o for o in section["outputs"] if o["name"] == "logits"]
    return section, validation


def graph_layout(path, layout):
    """The cache layout with ``uses_position_ids`` as the exported graph has it (a fused graph
    derives positions from the mask, and the exporter drops the unused input)."""
    import onnx

    names = {i.name for i in onnx.load(str(path), load_external_data=False).graph.input}
    return dataclasses.replace(layout, uses_position_ids=layout.uses_position_ids and "position_ids" in names)
