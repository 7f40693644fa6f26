"""The android target's KV-cache decoders: both files a phone's chat app can run.

- ``model.ort``: the graph ``--target ort`` makes (ONNX Runtime's fused attention where the model
  has it; ``int8``/``int4``: weight-only ``MatMulNBits``) in ONNX Runtime Mobile's format, the
  cache passed in and out each step;
- ``model.pte``: an ExecuTorch program with a static KV cache of ``--max-seq-len`` positions inside
  it (export/executorch_llm.py; ``int8``/``int4``: XNNPACK's dynamically quantized linears);
- the app's JSON (both runtimes' inputs and cache layout, special tokens, chat template) and golden
  greedy tokens with each step's largest logits.

Each file is checked here on its runtime: fp32 must give transformers' logits (within the export's
tolerance) and greedy tokens; int8/int4 report their greedy agreement with fp32.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from edgekit.errors import InputError, ValidationError
from edgekit.export.options import WEIGHT_ONLY_PARITY_TOKENS

log = logging.getLogger("edgekit.export")


def max_seq(job: Any, built: Any) -> int:
    """The cache length of the ExecuTorch program: ``--max-seq-len``, else the model's positions (at most ``DECODER_MAX_SEQ``)."""
    from edgekit.export.executorch_llm import DECODER_MAX_SEQ

    limit = int(built.max_length)
    length = job.cfg.max_seq or min(limit, DECODER_MAX_SEQ)
    if length > limit:
        raise InputError(
            f"--max-seq-len {length} is longer than the model's {limit} positions",
            f"pass --max-seq-len {limit} or less",
        )
    return length


def decoder(job: Any, case: Any) -> tuple[Any, dict, dict]:
    from edgekit.export.app_bundle import RUNTIME_FILES, android_sections, write_decoder_bundle
    from edgekit.export.targets.ort import TARGET as ORT
    from edgekit.models.cache_io import eos_token_ids

    length = max_seq(job, case.built)
    eos = list(eos_token_ids(case.built.model.generation_config.eos_token_id))
    info, quantized, onnx_validation = ORT.decoder(job, case)
    job = case.job  # the ORT role may have replaced it (a fused graph made from the source)
    ort_section, ort_validation = ort_file(job, case)
    pte_section, pte_validation = pte_file(job, case, length, eos)
    lay = case.io
    with job.steps.step("app files and golden tokens"):
        app_files = write_decoder_bundle(
            job.tmp,
            job.model_dir,
            case.built,
            case.prompts[:2],
            {
                "task": job.task,
                "precision": job.cfg.precision,
                "runtime_files": dict(RUNTIME_FILES),
                "ort": {
                    **case.io_section(),
                    "cache": {
                        "num_layers": lay.num_layers,
                        "kv_heads": lay.kv_heads,
                        "head_dim": lay.head_dim,
                        "past": lay.past_names()[:2],
                        "present": lay.present_names()[:2],
                        "uses_position_ids": lay.uses_position_ids,
                    },
                    "padding": "right" if case.attention == "GroupQueryAttention" else "left",
                },
                "executorch": {k: pte_section[k] for k in ("inputs", "outputs", "max_seq", "cache")},
                "eos_token_ids": eos,
                "max_length": int(case.built.max_length),
            },
        )
    section, validation = android_sections(
        {**ort_section, **quantized},
        pte_section,
        app_files,
        {"ort": ort_validation, "executorch": pte_validation, "onnx": onnx_validation},
    )
    return info, section, validation


def ort_file(job: Any, case: Any) -> tuple[dict, dict]:
    """The validated graph as ``model.ort``, checked again on ONNX Runtime: fp32 against PyTorch
    (logits and greedy tokens), weight-only graphs by their greedy agreement."""
    from edgekit.export.ort_format import onnx_to_ort
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.ort_backend import OrtSession

    src = job.tmp / "model.onnx"
    with job.steps.step("convert to the ORT format"):
        section = onnx_to_ort(src, job.tmp / "model.ort")
        for path in (src, src.with_name(src.name + ".data")):
            path.unlink(missing_ok=True)
    with job.steps.step("validate the ORT format"):
        if job.cfg.precision == "fp32":
            session, report = case.validate_onnx(job.tmp / "model.ort")
            generation = case.parity(session)
            return section, {
                "runtime": "onnxruntime",
                "format": "ort",
                **report.as_dict(),
                "greedy_generation": generation,
            }
        session = OrtSession(job.tmp / "model.ort", SessionOptions())
        generation = case.parity(session, WEIGHT_ONLY_PARITY_TOKENS, strict=False)
        return section, {"runtime": "onnxruntime", "format": "ort", "greedy_generation": generation}


def pte_file(job: Any, case: Any, length: int, eos: list[int]) -> tuple[dict, dict]:
    """The decoder's ExecuTorch program, checked on ``executorch.runtime``: each prompt's next-token
    logits against PyTorch (fp32: within the tolerance) and greedy tokens (fp32: identical)."""
    from edgekit.export.executorch_llm import write_decoder_pte
    from edgekit.export.executorch_pte import EXECUTORCH_RUNTIME
    from edgekit.runtimes.base import SessionOptions
    from edgekit.runtimes.executorch_backend import ExecuTorchDecoderSession

    built, precision = case.built, job.cfg.precision
    with job.steps.step(f"ExecuTorch program ({precision}, static cache of {length})"):
        section = write_decoder_pte(built.model, precision, length, eos, job.tmp / "model.pte")
    with job.steps.step("validate ExecuTorch against PyTorch"):
        session = ExecuTorchDecoderSession(
            job.tmp / "model.pte",
            length,
            int(built.config.vocab_size),
            case.io.uses_position_ids,
            SessionOptions(),
        )
        diff = next_token_difference(built, session, case.prompts)
        if precision == "fp32":
            if diff > job.atol:
                raise ValidationError(
                    f"the ExecuTorch program's logits differ from PyTorch's by {diff:.2e} (> atol {job.atol:.0e})",
                    "nothing was written; rerun with --verbose, or raise --atol",
                )
            generation = case.parity(session)
        else:
            generation = case.parity(session, WEIGHT_ONLY_PARITY_TOKENS, strict=False)
            if not generation["identical"]:
                log.warning(
                    "ExecuTorch %s: greedy tokens match fp32 on %d of %d prompts (matching prefixes %s of %d tokens)",
                    precision,
                    generation["identical_prompts"],
                    generation["prompts"],
                    generation["matching_prefix"],
                    WEIGHT_ONLY_PARITY_TOKENS,
                )
    return section, {
        "runtime": EXECUTORCH_RUNTIME,
        "max_abs_logit_diff": diff,
        "atol": job.atol,
        "greedy_generation": generation,
    }


def next_token_difference(built: Any, session: Any, prompts: list[str]) -> float:
    """The largest difference between the session's and PyTorch's next-token logits over the prompts."""
    import torch

    worst = 0.0
    for prompt in prompts:
        ids = np.asarray([built.tokenizer(prompt)["input_ids"]], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        if any(s.name == "position_ids" for s in session.input_specs()):
            feeds["position_ids"] = np.arange(ids.shape[1], dtype=np.int64)[None]
        session.reset(1)
        got = session.run(feeds, ["logits"])["logits"][0, -1]
        with torch.inference_mode():
            want = built.model(torch.from_numpy(ids)).logits[0, -1].float().numpy()
        worst = max(worst, float(np.abs(got - want).max()))
    return worst
