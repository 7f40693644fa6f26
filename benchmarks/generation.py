"""Generation benchmark cases for KV-cache decoders and encoder-decoders (batch 1), run over the bench workers.

Per (artifact, backend): time to first token after a ``prompt_len`` prompt, decode tokens/s over
``new_tokens`` greedy tokens (EOS ignored), per-token latency at each context length, and the
cost of the same token without a cache (a full forward over the context: "recompute").
"""

from __future__ import annotations

from typing import Any

import numpy as np

GENERATING = ("text-generation", "seq2seq")
"""Export tasks whose artifacts bench times token by token; also the ``kind`` of their bench rows."""
PER_CONTEXT_STEPS = 8


def prompt_ids(tokenizer, texts: list[str], length: int) -> list[int]:
    """``length`` token ids of real text (texts joined and repeated as needed)."""
    ids: list[int] = []
    i = 0
    while len(ids) < length:
        ids.extend(tokenizer(texts[i % len(texts)])["input_ids"])
        i += 1
    return [int(t) for t in ids[:length]]


def _context_columns(
    row: dict[str, Any], contexts, per_ctx: dict, recompute: dict, key: int
) -> dict[str, Any]:
    """Median per-token latency with the cache and without it at each context, and how much the
    cached latency grows from the shortest context to the longest."""
    for ctx in contexts:
        row[f"per_token_ms@{ctx}"] = float(np.median(per_ctx[(key, ctx)]) * 1e3)
        row[f"recompute_ms@{ctx}"] = float(np.median(recompute[(key, ctx)]) * 1e3)
    row["per_token_growth"] = row[f"per_token_ms@{max(contexts)}"] / row[f"per_token_ms@{min(contexts)}"]
    return row


def run_generation_cases(
    cfg, workers, tokenizers, texts, rounds: int, progress=None, task=None, verbose: bool = False
) -> list[dict[str, Any]]:
    steps: dict[int, list[list[float]]] = {id(w): [] for w in workers}
    per_ctx: dict[tuple[int, int], list[float]] = {}
    ttft_ctx: dict[tuple[int, int], list[float]] = {}
    recompute: dict[tuple[int, int], list[float]] = {}
    prompts = {
        w.artifact: prompt_ids(tokenizers[w.artifact], texts, max((cfg.prompt_len, *cfg.contexts)))
        for w in workers
    }
    for w in workers:  # warm up each worker once (first runs allocate buffers and compile kernels)
        w.ask("generate", {"prompt": prompts[w.artifact][: cfg.prompt_len], "new_tokens": 4}, verbose)
    for r in range(rounds):
        order = workers[r % len(workers) :] + workers[: r % len(workers)]
        for w in order:
            prompt = prompts[w.artifact]
            steps[id(w)].append(
                w.ask("generate", {"prompt": prompt[: cfg.prompt_len], "new_tokens": cfg.new_tokens}, verbose)
            )
            for ctx in cfg.contexts:
                times = w.ask(
                    "generate", {"prompt": prompt[:ctx], "new_tokens": PER_CONTEXT_STEPS + 1}, verbose
                )
                ttft_ctx.setdefault((id(w), ctx), []).append(times[0])
                per_ctx.setdefault((id(w), ctx), []).extend(times[1:])
                recompute.setdefault((id(w), ctx), []).extend(
                    w.ask("recompute", {"prompt": prompt[:ctx], "repeat": 2}, verbose)
                )
        if progress:
            progress.advance(task)
    rows = []
    for w in workers:
        runs = steps[id(w)]
        decode_s = [sum(run[1:]) for run in runs]
        row: dict[str, Any] = {
            "artifact": w.name,
            "backend": w.backend,
            "kind": "text-generation",
            "batch": 1,
            "prompt_len": cfg.prompt_len,
            "new_tokens": cfg.new_tokens,
            "runs": len(runs),
            "ttft_ms": float(np.median([run[0] for run in runs]) * 1e3),
            "tokens_per_s": float(np.median([(cfg.new_tokens - 1) / s for s in decode_s])),
            "per_token_p50_ms": float(np.median([t for run in runs for t in run[1:]]) * 1e3),
            "per_token_p90_ms": float(np.percentile([t for run in runs for t in run[1:]], 90) * 1e3),
            "model_mb": w.info["model_bytes"] / 2**20,
        }
        for ctx in cfg.contexts:
            row[f"ttft_ms@{ctx}"] = float(np.median(ttft_ctx[(id(w), ctx)]) * 1e3)
        rows.append(_context_columns(row, cfg.contexts, per_ctx, recompute, id(w)))
    return rows


def seq2seq_encoder_inputs(
    artifact, manifest: dict, tokenizer, texts: list[str], source_len: int
) -> tuple[dict[str, np.ndarray], str]:
    """One encoder input and how it was made: ``source_len`` tokens of real text for text families;
    for speech (Whisper), seeded log-mel-shaped features of one full window: the encoder always
    reads the whole window and decoding runs a fixed number of steps, so timings do not depend on
    what the audio says."""

    io = manifest["export"]["seq2seq"]
    if io["encoder_input"] != "input_ids":  # speech features or a captioner's pixels: a fixed shape
        from transformers import AutoConfig

        from edgekit.models.seq2seq import feature_shape
        from edgekit.models.specs import seq2seq_spec_for

        config = AutoConfig.from_pretrained(str(artifact))
        shape = feature_shape(config, seq2seq_spec_for(config.model_type), 1, artifact)
        features = np.random.default_rng(0).normal(0.0, 0.5, shape).astype(np.float32)
        what = "features" if io["encoder_input"] == "input_features" else "pixels"
        whole = "one full window" if what == "features" else "one image"
        if what == "features":
            return {io["encoder_input"]: features}, f"seeded {what} {list(shape)} ({whole})"
        from edgekit.runtimes.seq2seq import image_encoder_feed

        feed = image_encoder_feed(manifest["export"], tokenizer, features)
        task = (
            f", the default task's {feed['input_ids'].shape[1]}-token prompt" if "input_ids" in feed else ""
        )
        return feed, f"seeded {what} {list(shape)} ({whole}{task})"
    ids = np.asarray([prompt_ids(tokenizer, texts, source_len)], dtype=np.int64)
    inputs = {"input_ids": ids}
    if io["encoder_mask"]:
        inputs["attention_mask"] = np.ones_like(ids)
    return inputs, f"{source_len} tokens of real text"


def run_seq2seq_cases(
    cfg, workers, tokenizers, manifests, texts, rounds: int, progress=None, task=None, verbose: bool = False
) -> list[dict[str, Any]]:
    """Per (artifact, backend), batch 1: encoder latency, time to first token (encoder + the first
    decoder step), decode tokens/s over ``new_tokens`` greedy tokens (EOS ignored), and per-token
    latency at each decoder context with the cache and without it (a full decoder pass over the
    context; the cross-attention cache from the encoder is reused either way)."""
    source_len = max(cfg.seq_lens)
    inputs = {}
    described = {}
    decoder_text = {}
    for w in workers:
        m = manifests[w.artifact]
        inputs[w.artifact], described[w.artifact] = seq2seq_encoder_inputs(
            w.artifact, m, tokenizers[w.artifact], texts, source_len
        )
        start = int(m["export"]["decoder_start_token_id"])
        decoder_text[w.artifact] = [start] + prompt_ids(tokenizers[w.artifact], texts, max(cfg.contexts))
    runs: dict[int, list[dict]] = {id(w): [] for w in workers}
    per_ctx: dict[tuple[int, int], list[float]] = {}
    recompute: dict[tuple[int, int], list[float]] = {}
    for w in workers:  # warm-up: first runs allocate buffers and compile kernels
        w.ask(
            "seq2seq",
            {"inputs": inputs[w.artifact], "prompt": decoder_text[w.artifact][:1], "new_tokens": 4},
            verbose,
        )
    for r in range(rounds):
        order = workers[r % len(workers) :] + workers[: r % len(workers)]
        for w in order:
            full = decoder_text[w.artifact]
            runs[id(w)].append(
                w.ask(
                    "seq2seq",
                    {"inputs": inputs[w.artifact], "prompt": full[:1], "new_tokens": cfg.new_tokens},
                    verbose,
                )
            )
            for ctx in cfg.contexts:
                times = w.ask(
                    "seq2seq",
                    {"inputs": None, "prompt": full[:ctx], "new_tokens": PER_CONTEXT_STEPS + 1},
                    verbose,
                )["steps"]
                recompute.setdefault((id(w), ctx), []).append(times[0])
                per_ctx.setdefault((id(w), ctx), []).extend(times[1:])
        if progress:
            progress.advance(task)
    rows = []
    for w in workers:
        done = runs[id(w)]
        steps = [run["steps"] for run in done]
        row: dict[str, Any] = {
            "artifact": w.name,
            "backend": w.backend,
            "kind": "seq2seq",
            "batch": 1,
            "encoder_input": described[w.artifact],
            "new_tokens": cfg.new_tokens,
            "runs": len(done),
            "encoder_ms": float(np.median([run["encode_s"] for run in done]) * 1e3),
            "ttft_ms": float(np.median([run["encode_s"] + run["steps"][0] for run in done]) * 1e3),
            "tokens_per_s": float(np.median([(cfg.new_tokens - 1) / sum(s[1:]) for s in steps])),
            "per_token_p50_ms": float(np.median([t for s in steps for t in s[1:]]) * 1e3),
            "per_token_p90_ms": float(np.percentile([t for s in steps for t in s[1:]], 90) * 1e3),
            "model_mb": w.info["model_bytes"] / 2**20,
        }
        rows.append(_context_columns(row, cfg.contexts, per_ctx, recompute, id(w)))
    return rows
