"""Generation benchmark cases for KV-cache decoders (batch 1), run over the bench workers.

Per (artifact, backend): time to first token after a ``prompt_len`` prompt, decode tokens/s over
``new_tokens`` greedy tokens (EOS ignored), per-token latency at each context length, and the
cost of the same token without a cache (a full forward over the context: "recompute").
"""

from __future__ import annotations

from typing import Any

import numpy as np

PER_CONTEXT_STEPS = 8


def prompt_ids(tokenizer, texts: list[str], length: int) -> list[int]:
    """``length`` token ids of real text (texts joined and repeated as needed)."""
    ids: list[int] = []
    i = 0
    while len(ids) < length:
        ids.extend(tokenizer(texts[i % len(texts)])["input_ids"])
        i += 1
    return [int(t) for t in ids[:length]]


def run_generation_cases(cfg, workers, tokenizers, texts, rounds: int, progress=None, task=None, verbose: bool = False) -> list[dict[str, Any]]:
    steps: dict[int, list[list[float]]] = {id(w): [] for w in workers}
    per_ctx: dict[tuple[int, int], list[float]] = {}
    ttft_ctx: dict[tuple[int, int], list[float]] = {}
    recompute: dict[tuple[int, int], list[float]] = {}
    prompts = {w.artifact: prompt_ids(tokenizers[w.artifact], texts, max((cfg.prompt_len, *cfg.contexts))) for w in workers}
    for w in workers:  # warm up each worker once (first runs allocate buffers and compile kernels)
        w.ask("generate", {"prompt": prompts[w.artifact][: cfg.prompt_len], "new_tokens": 4}, verbose)
    for r in range(rounds):
        order = workers[r % len(workers):] + workers[: r % len(workers)]
        for w in order:
            prompt = prompts[w.artifact]
            steps[id(w)].append(w.ask("generate", {"prompt": prompt[: cfg.prompt_len], "new_tokens": cfg.new_tokens}, verbose))
            for ctx in cfg.contexts:
                times = w.ask("generate", {"prompt": prompt[:ctx], "new_tokens": PER_CONTEXT_STEPS + 1}, verbose)
                ttft_ctx.setdefault((id(w), ctx), []).append(times[0])
                per_ctx.setdefault((id(w), ctx), []).extend(times[1:])
                recompute.setdefault((id(w), ctx), []).extend(w.ask("recompute", {"prompt": prompt[:ctx], "repeat": 2}, verbose))
        if progress:
            progress.advance(task)
    rows = []
    for w in workers:
        runs = steps[id(w)]
        decode_s = [sum(run[1:]) for run in runs]
        row: dict[str, Any] = {
            "artifact": w.name,
            "backend": w.backend,
            "kind": "generation",
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
            row[f"per_token_ms@{ctx}"] = float(np.median(per_ctx[(id(w), ctx)]) * 1e3)
            row[f"recompute_ms@{ctx}"] = float(np.median(recompute[(id(w), ctx)]) * 1e3)
        lo, hi = min(cfg.contexts), max(cfg.contexts)
        row["per_token_growth"] = row[f"per_token_ms@{hi}"] / row[f"per_token_ms@{lo}"]
        rows.append(row)
    return rows
