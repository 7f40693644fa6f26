"""Compare an exported model with PyTorch on real text. Over tolerance is an error, not a warning."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.calibration.text import sample_texts, tokenize_fixed, tokenize_natural
from edgekit.errors import ValidationError
from edgekit.models.cache_io import eos_token_ids


@dataclass
class ValidationReport:
    atol: float
    rtol: float = 0.0
    """Of the reference's largest |value|: fp16 weights move logits of order 10 by ~1e-2..1e-1."""
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    cases: list[dict[str, Any]] = field(default_factory=list)
    passed: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "atol": self.atol,
            **({"rtol": self.rtol} if self.rtol else {}),
            "passed": self.passed,
            "max_abs_diff": self.max_abs_diff,
            "cases": self.cases,
        }


def encoder_cases(
    tokenizer, input_names: list[str], max_length: int
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Real inputs: single texts of several lengths, a batch at a longer length, and a padded batch."""
    texts = sample_texts(min_words=200)
    short = sample_texts()
    cases = []
    for i, length in enumerate(sorted({min(n, max_length) for n in (8, 32, 128)})):
        cases.append(
            (f"batch1_len{length}", tokenize_fixed(tokenizer, texts, 1, length, input_names, offset=i))
        )
    cases.append(
        (
            f"batch4_len{min(64, max_length)}",
            tokenize_fixed(tokenizer, texts, 4, min(64, max_length), input_names, offset=3),
        )
    )
    padded = ["Rain later.", short[0], short[1] + " " + short[2]]
    cases.append(("padded_batch3", tokenize_natural(tokenizer, padded, input_names, max_length=max_length)))
    return cases


def compare(reference, candidate, cases, atol: float) -> ValidationReport:
    """Run both sessions on every case; record max |diff| per output and case."""
    report = ValidationReport(atol=atol)
    for case_name, inputs in cases:
        expected = reference.run(inputs)
        got = candidate.run(inputs)
        row: dict[str, Any] = {"case": case_name, "shape": list(next(iter(inputs.values())).shape)}
        for name, ref in expected.items():
            if name not in got:
                raise ValidationError(
                    f"exported model has no output '{name}'",
                    "this is a bug in the export spec; please report it",
                )
            out = got[name]
            if out.shape != ref.shape:
                raise ValidationError(
                    f"output '{name}' has shape {out.shape}, PyTorch gives {ref.shape} (case {case_name})",
                    "this is a bug in the export spec; please report it",
                )
            diff = float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
            if not np.isfinite(diff):
                diff = float("inf")
            row[name] = diff
            report.max_abs_diff[name] = max(report.max_abs_diff.get(name, 0.0), diff)
        report.cases.append(row)
    worst = max(report.max_abs_diff.items(), key=lambda kv: kv[1])
    report.passed = worst[1] <= atol
    return report


def require_pass(report: ValidationReport) -> None:
    if not report.passed:
        name, diff = max(report.max_abs_diff.items(), key=lambda kv: kv[1])
        raise ValidationError(
            f"exported model differs from PyTorch: max |diff| of '{name}' is {diff:.3g} > atol {report.atol:g}",
            "nothing was written; rerun with --verbose, or raise --atol if the difference is expected",
        )


def decoder_cases(
    tokenizer, io, reference, padding_side: str = "left"
) -> list[tuple[str, dict[str, np.ndarray]]]:
    """A prefill with an empty past, one step after it (fed the reference's cache), and a padded
    batch of 2 (``padding_side``). Inputs are the reference's; compare_masked_batch feeds a
    candidate the ones its graph takes."""
    from edgekit.runtimes.generate import position_ids

    texts = sample_texts()
    prompt = tokenizer(texts[0], return_tensors="np")["input_ids"][:, :24].astype(np.int64)
    mask = np.ones_like(prompt)
    prefill = {"input_ids": prompt, "attention_mask": mask, **io.empty_past(1)}
    if io.uses_position_ids:
        prefill["position_ids"] = position_ids(mask, prompt.shape[1])
    ref = reference.run(prefill)
    next_token = np.asarray([[int(np.argmax(ref["logits"][0, -1]))]], dtype=np.int64)
    step_mask = np.ones((1, prompt.shape[1] + 1), dtype=np.int64)
    step = {
        "input_ids": next_token,
        "attention_mask": step_mask,
        **{p: ref[q] for p, q in zip(io.past_names(), io.present_names())},
    }
    if io.uses_position_ids:
        step["position_ids"] = position_ids(step_mask, 1)
    ids = [tokenizer(t)["input_ids"][:n] for t, n in ((texts[1], 7), (texts[2], 15))]
    width = max(len(x) for x in ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    left = padding_side == "left"
    batch_ids = np.asarray(
        [([pad] * (width - len(x)) + x) if left else (x + [pad] * (width - len(x))) for x in ids],
        dtype=np.int64,
    )
    batch_mask = np.asarray(
        [
            ([0] * (width - len(x)) + [1] * len(x)) if left else ([1] * len(x) + [0] * (width - len(x)))
            for x in ids
        ],
        dtype=np.int64,
    )
    padded = {"input_ids": batch_ids, "attention_mask": batch_mask, **io.empty_past(2)}
    if io.uses_position_ids:
        padded["position_ids"] = position_ids(batch_mask, width)
    return [
        ("prefill_len%d" % prompt.shape[1], prefill),
        ("step_after_prefill", step),
        (f"{padding_side}_padded_batch2", padded),
    ]


def compare_masked_batch(
    reference, candidate, inputs, atol: float, report: ValidationReport, case_name: str
) -> None:
    """Like ``compare`` for one case, but only where the attention mask is 1: logits of real query
    tokens, cache entries of real tokens (what padded positions hold is undefined). The candidate
    gets the inputs its graph takes (a fused-attention graph reads positions from the mask)."""
    taken = {spec.name for spec in candidate.input_specs()}
    expected, got = reference.run(inputs), candidate.run({k: v for k, v in inputs.items() if k in taken})
    mask = inputs["attention_mask"].astype(bool)
    keep = mask[:, -inputs["input_ids"].shape[1] :]
    row: dict[str, Any] = {"case": case_name, "shape": list(inputs["input_ids"].shape)}
    for name, ref in expected.items():
        out = got[name]
        if name == "logits":
            diff = float(np.max(np.abs(out[keep].astype(np.float64) - ref[keep])))
        else:  # cache [batch, heads, total_sequence, head_dim]: the real tokens' entries
            real = np.broadcast_to(mask[:, None, :, None], ref.shape)
            diff = float(np.max(np.abs(out[real].astype(np.float64) - ref[real])))
        row[name] = diff
        report.max_abs_diff[name] = max(report.max_abs_diff.get(name, 0.0), diff)
    report.cases.append(row)
    report.passed = max(report.max_abs_diff.values()) <= atol


def stateful_compare(reference, session, io, cases, report: ValidationReport) -> None:
    """Validate a session that keeps the KV cache inside (OpenVINO): the prefill and the step after it
    run in sequence on one state; logits are compared with the reference's."""
    prefill = next(inputs for name, inputs in cases if name.startswith("prefill"))
    step = next(inputs for name, inputs in cases if name == "step_after_prefill")
    session.reset(1)
    scale = 0.0
    for name, inputs in (("prefill", prefill), ("step_after_prefill", step)):
        feeds = {k: v for k, v in inputs.items() if not k.startswith("past_key_values.")}
        expected = reference.run(inputs)["logits"]
        got = session.run(feeds, ["logits"])["logits"]
        diff = float(np.max(np.abs(got.astype(np.float64) - expected)))
        scale = max(scale, float(np.max(np.abs(expected))))
        report.cases.append({"case": name, "shape": list(feeds["input_ids"].shape), "logits": diff})
        report.max_abs_diff["logits"] = max(report.max_abs_diff.get("logits", 0.0), diff)
    report.passed = report.max_abs_diff["logits"] <= report.atol + report.rtol * scale


def greedy_parity(
    model, tokenizer, session, io, prompts: list[str], new_tokens: int, strict: bool = True
) -> dict[str, Any]:
    """edgekit's generation loop on ``session`` against transformers' greedy ``generate``; tokens must be
    identical when ``strict``, else the difference is reported."""
    import torch

    from edgekit.runtimes.generate import GenerationConfig, generate_ids

    eos_ids = eos_token_ids(model.generation_config.eos_token_id)
    results = []
    for prompt in prompts:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.inference_mode():
            hf = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=new_tokens,
                do_sample=False,
                num_beams=1,
                pad_token_id=eos_ids[0] if eos_ids else 0,
            )
        expected = hf[0, ids.shape[1] :].tolist()
        got = generate_ids(
            session, io, ids[0].tolist(), GenerationConfig(max_new_tokens=new_tokens), eos_token_ids=eos_ids
        )
        prefix = next(
            (i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected))
        )
        results.append(
            {
                "prompt": prompt,
                "identical": got == expected,
                "matching_prefix": prefix,
                "edgekit": got,
                "transformers": expected,
            }
        )
    mismatched = [r for r in results if not r["identical"]]
    if mismatched and not strict:
        return {
            "prompts": len(prompts),
            "new_tokens": new_tokens,
            "identical": False,
            "identical_prompts": len(prompts) - len(mismatched),
            "matching_prefix": [r["matching_prefix"] for r in results],
            "mismatches": mismatched,
        }
    if mismatched:
        r = mismatched[0]
        raise ValidationError(
            f"greedy tokens differ from transformers for prompt {r['prompt']!r}: {r['edgekit']} vs {r['transformers']}",
            "nothing was written; rerun with --verbose",
        )
    return {
        "prompts": len(prompts),
        "new_tokens": new_tokens,
        "identical": True,
        "identical_prompts": len(prompts),
    }


def seq2seq_cases(built, encoder_reference, seed: int = 0) -> dict[str, Any]:
    """Encoder inputs (one input; a padded batch of 2 for text), decoder steps fed the reference
    encoder's cross-attention cache (a prefill of 4 tokens on an empty past, then one step on the
    reference's cache), and three single inputs for generation parity."""
    io = built.io
    rng = np.random.default_rng(seed)
    if built.spec.text_encoder:
        texts = sample_texts()
        names = ["input_ids", "attention_mask"]
        single = tokenize_natural(built.tokenizer, [texts[0]], names, max_length=32)
        padded = tokenize_natural(built.tokenizer, ["Rain later.", texts[1]], names, max_length=32)
        prompts = [tokenize_natural(built.tokenizer, [t], names, max_length=24) for t in texts[2:5]]
    else:
        from edgekit.models.seq2seq import feature_shape

        def features(batch: int) -> dict[str, np.ndarray]:
            shape = feature_shape(built.config, built.spec, batch, built.model_dir)
            values = rng.standard_normal(shape).astype(np.float32)
            if built.prompt is not None:  # the default task's prompt beside the image (Florence-2)
                from edgekit.runtimes.seq2seq import image_encoder_feed

                return image_encoder_feed({"encoder_prompt": built.prompt}, built.tokenizer, values)
            return {built.spec.encoder_input: values}

        single, padded, prompts = features(1), features(2), [features(1) for _ in range(3)]
    encoder_cases = [
        ("encoder_single", single),
        ("encoder_batch2" + ("_padded" if built.spec.text_encoder else ""), padded),
    ]
    ref = encoder_reference.run(padded)
    cross = {p: ref[q] for p, q in zip(io.cross_names("past_key_values"), io.cross_names("present"))}
    vocab = int(built.text_config.vocab_size)
    ids = np.asarray([[built.start_token] + list(rng.integers(4, vocab, 3))] * 2, dtype=np.int64)
    prefill: dict[str, np.ndarray] = {"input_ids": ids, **io.empty_self_past(2), **cross}
    if built.spec.text_encoder:
        prefill["encoder_attention_mask"] = padded["attention_mask"]
    return {"encoder": encoder_cases, "decoder_prefill": prefill, "prompts": prompts}


def seq2seq_compare(
    references: dict, sessions: dict, cases: dict[str, Any], io, report: ValidationReport
) -> None:
    """Encoder outputs on every encoder case; decoder logits and self-attention cache on the prefill
    and on one step fed the reference's cache."""
    prefill = cases["decoder_prefill"]
    ref_prefill = references["decoder"].run(prefill)
    step = dict(prefill)
    step["input_ids"] = np.argmax(ref_prefill["logits"][:, -1], axis=-1)[:, None].astype(np.int64)
    step.update(
        {p: ref_prefill[q] for p, q in zip(io.self_names("past_key_values"), io.self_names("present"))}
    )
    parts = [("encoder", name, inputs) for name, inputs in cases["encoder"]] + [
        ("decoder", "decoder_prefill", prefill),
        ("decoder", "decoder_step", step),
    ]
    for part, name, inputs in parts:
        sub = compare(references[part], sessions[part], [(name, inputs)], report.atol)
        for key, diff in sub.max_abs_diff.items():
            report.max_abs_diff[f"{part}.{key}"] = max(report.max_abs_diff.get(f"{part}.{key}", 0.0), diff)
        report.cases.extend(sub.cases)
    report.passed = max(report.max_abs_diff.values()) <= report.atol


def seq2seq_stateful_compare(
    references: dict, stateful_decoder, cases: dict[str, Any], io, report: ValidationReport
) -> None:
    """A decoder whose self-attention cache is kept inside (OpenVINO states): its logits on the
    prefill and on the next step, which reads the cache it kept, against the reference's."""
    prefill = cases["decoder_prefill"]
    ref_prefill = references["decoder"].run(prefill)
    step_ids = np.argmax(ref_prefill["logits"][:, -1], axis=-1)[:, None].astype(np.int64)
    ref_step = dict(prefill, input_ids=step_ids)
    ref_step.update(
        {p: ref_prefill[q] for p, q in zip(io.self_names("past_key_values"), io.self_names("present"))}
    )
    expected = {
        "stateful_prefill": ref_prefill["logits"],
        "stateful_step": references["decoder"].run(ref_step)["logits"],
    }
    fixed = {k: v for k, v in prefill.items() if k not in set(io.self_names("past_key_values"))}
    stateful_decoder.reset(prefill["input_ids"].shape[0])
    got = {"stateful_prefill": stateful_decoder.run(fixed, ["logits"])["logits"]}
    got["stateful_step"] = stateful_decoder.run(dict(fixed, input_ids=step_ids), ["logits"])["logits"]
    for case, ref in expected.items():
        diff = float(np.max(np.abs(got[case].astype(np.float64) - ref.astype(np.float64))))
        report.cases.append({"case": case, "shape": list(got[case].shape), "decoder.logits": diff})
        report.max_abs_diff["decoder.logits"] = max(report.max_abs_diff.get("decoder.logits", 0.0), diff)
    report.passed = max(report.max_abs_diff.values()) <= report.atol


def seq2seq_greedy_parity(
    built, sessions: dict, cases: dict[str, Any], new_tokens: int, strict: bool = True, cfg=None
) -> dict[str, Any]:
    """edgekit's seq2seq generation against transformers' ``generate`` (greedy unless ``cfg`` says
    otherwise) on three inputs; identical tokens required when ``strict``."""
    import torch
    import transformers

    from edgekit.runtimes.generate import GenerationConfig
    from edgekit.runtimes.seq2seq import Seq2SeqStepper, generate_seq2seq

    model_gen = built.model.generation_config
    suppress = tuple(int(t) for t in getattr(model_gen, "suppress_tokens", None) or ())
    begin_suppress = tuple(int(t) for t in getattr(model_gen, "begin_suppress_tokens", None) or ())
    # transformers applies the model's suppress lists (Whisper's) in generate: edgekit applies them too
    cfg = dataclasses.replace(
        cfg or GenerationConfig(max_new_tokens=new_tokens),
        suppress_tokens=suppress,
        begin_suppress_tokens=begin_suppress,
    )
    eos_ids = eos_token_ids(model_gen.eos_token_id)
    pad = built.model.generation_config.pad_token_id
    hf_cfg = transformers.GenerationConfig(
        decoder_start_token_id=built.start_token,
        eos_token_id=list(eos_ids) or None,
        pad_token_id=pad if pad is not None else (eos_ids[0] if eos_ids else 0),
        max_new_tokens=cfg.max_new_tokens,
        do_sample=False,
        num_beams=cfg.num_beams,
        length_penalty=cfg.length_penalty,
        early_stopping=cfg.early_stopping,
        no_repeat_ngram_size=cfg.no_repeat_ngram_size,
        suppress_tokens=list(suppress) or None,
        begin_suppress_tokens=list(begin_suppress) or None,
    )
    stepper = Seq2SeqStepper(sessions["encoder"], sessions["decoder"], built.io)
    results = []
    for inputs in cases["prompts"]:
        with torch.inference_mode():
            tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
            if hasattr(built.model, "reference_generate"):  # an adapted family (BLIP): its own generate
                hf = built.model.reference_generate(hf_cfg, [built.start_token], **tensors)
            else:
                hf = transformers.GenerationMixin.generate(built.model, **tensors, generation_config=hf_cfg)
        expected = hf[0, 1:].tolist()
        got = generate_seq2seq(stepper, inputs, [built.start_token], cfg, eos_token_ids=eos_ids)
        while len(expected) > len(got) and expected[-1] == hf_cfg.pad_token_id:
            expected.pop()
        prefix = next(
            (i for i, (a, b) in enumerate(zip(got, expected)) if a != b), min(len(got), len(expected))
        )
        results.append(
            {
                "identical": got == expected,
                "matching_prefix": prefix,
                "edgekit": got,
                "transformers": expected,
            }
        )
    mismatched = [r for r in results if not r["identical"]]
    if mismatched and strict:
        r = mismatched[0]
        raise ValidationError(
            f"generated tokens differ from transformers: {r['edgekit']} vs {r['transformers']}",
            "nothing was written; rerun with --verbose",
        )
    return {
        "inputs": len(results),
        "new_tokens": cfg.max_new_tokens,
        "num_beams": cfg.num_beams,
        "identical": not mismatched,
        "identical_inputs": len(results) - len(mismatched),
        "matching_prefix": [r["matching_prefix"] for r in results],
    }
