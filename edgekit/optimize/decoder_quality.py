"""Quality of a KV-cache decoder artifact on its own backend: held-out perplexity (one pass over
each text with an empty cache, the graph the prompt step runs) and greedy agreement with the
teacher (the share of tokens before the first difference, over fixed prompts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

GREEDY_TOKENS = 32


def sequence_logits(session: Any, io: Any, ids: list[int]) -> np.ndarray:
    """(T, vocab) logits of one text, every position, from an empty cache."""
    from edgekit.runtimes.generate import position_ids

    tokens = np.asarray([ids], dtype=np.int64)
    mask = np.ones_like(tokens)
    feeds: dict[str, np.ndarray] = {"input_ids": tokens, "attention_mask": mask}
    if io.uses_position_ids:
        feeds["position_ids"] = position_ids(mask, tokens.shape[1])
    if session.stateful:
        session.reset(1)
    else:
        feeds.update(io.empty_past(1))
    return np.asarray(session.run(feeds, ["logits"])["logits"][0], dtype=np.float64)


def perplexity(session: Any, io: Any, texts: list[list[int]]) -> float:
    """exp(mean next-token cross-entropy) over every token of ``texts`` (token ids) after the first."""
    total, count = 0.0, 0
    for ids in texts:
        logits = sequence_logits(session, io, ids)[:-1]
        top = logits.max(axis=1, keepdims=True)
        log_z = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
        total += float((log_z - logits[np.arange(len(ids) - 1), ids[1:]]).sum())
        count += len(ids) - 1
    return float(np.exp(total / count))


def greedy(
    session: Any, io: Any, prompts: list[list[int]], new_tokens: int = GREEDY_TOKENS
) -> list[list[int]]:
    from edgekit.runtimes.generate import GenerationConfig, generate_ids

    cfg = GenerationConfig(max_new_tokens=new_tokens)
    return [generate_ids(session, io, p, cfg) for p in prompts]


def agreement(tokens: list[list[int]], reference: list[list[int]]) -> float:
    """Mean share of each reference sequence matched before the first difference."""
    shares = []
    for got, ref in zip(tokens, reference):
        same = next((i for i, (a, b) in enumerate(zip(got, ref)) if a != b), min(len(got), len(ref)))
        shares.append(same / max(len(ref), 1))
    return float(np.mean(shares))


def eval_tokens(artifact: Path, texts: list[str], max_tokens: int) -> tuple[list[list[int]], list[list[int]]]:
    """The held-out texts and the fixed greedy prompts as token ids of the artifact's tokenizer."""
    from edgekit.calibration._sample import greedy_prompts
    from edgekit.models.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(artifact, needed_for="decoder quality on --eval-data")
    held = [tokenizer(t, truncation=True, max_length=max_tokens)["input_ids"] for t in texts]
    held = [ids for ids in held if len(ids) >= 2]
    prompts = [tokenizer(p)["input_ids"] for p in greedy_prompts()]
    return held, prompts


def measure(artifact: Path, backend: str, texts: list[str], max_tokens: int, threads: int | None) -> dict:
    """Perplexity on ``texts`` and the greedy tokens on the fixed prompts, on ``backend``."""
    from edgekit.artifacts import read_manifest
    from edgekit.models.cache_io import DecoderIO
    from edgekit.runtimes import load_session

    io = DecoderIO.from_manifest(read_manifest(artifact))
    session = load_session(artifact, backend, threads=threads)
    held, prompts = eval_tokens(artifact, texts, max_tokens)
    return {
        "perplexity": perplexity(session, io, held),
        "greedy": greedy(session, io, prompts),
        "texts": len(held),
    }


EVAL_TEXTS = 64


def run_quality(
    cfg: Any, plan: Any, outcomes: dict, stages_dir: Path, hashes: dict, board: Any, bench: dict | None
):
    """Perplexity and greedy agreement of the teacher (PyTorch) and every cell that was made, each
    on its own backend, added to the bench result's ``quality`` rows; kept per cell as JSON in
    ``stages/`` (keyed by the cell's stage and the eval data), so a rerun reuses them."""
    from edgekit.artifacts import read_json, write_json
    from edgekit.calibration.text import load_texts
    from edgekit.optimize.plan import digest

    if bench is None:
        board.finish("quality", "skipped", "nothing was benched")
        return bench
    texts = load_texts(cfg.eval_data, encoding=cfg.encoding)[:EVAL_TEXTS]
    reference = plan.stage(plan.reference).folder
    runs = [(reference, "torch")] + [
        (plan.stage(c.stage).folder, c.backend) for c in plan.cells if outcomes[c.stage].ok
    ]
    board.start("quality", f"perplexity on {len(texts)} texts, greedy tokens on 3 prompts")
    measured: dict[tuple[str, str], dict] = {}
    for folder, backend in runs:
        cache = (
            stages_dir
            / f"quality-{folder}-{backend}-{digest(hashes.get('eval_data'), EVAL_TEXTS, cfg.seq_len)}.json"
        )
        board.detail("quality", f"{folder} on {backend}")
        if cache.is_file():
            measured[folder, backend] = read_json(cache, "remove it to measure again")
            continue
        try:
            measured[folder, backend] = measure(stages_dir / folder, backend, texts, cfg.seq_len, cfg.threads)
        except Exception as exc:  # noqa: BLE001 - one cell's failure is its row's error
            measured[folder, backend] = {
                "error": f"quality: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            }
            continue
        write_json(cache, measured[folder, backend])
    teacher = measured[reference, "torch"]
    rows = []
    for (folder, backend), m in measured.items():
        row = {"artifact": folder, "backend": backend, **{k: v for k, v in m.items() if k != "greedy"}}
        if "greedy" in m and "greedy" in teacher:
            row["greedy_agreement"] = agreement(m["greedy"], teacher["greedy"])
        rows.append(row)
    board.finish("quality", "done")
    return {**bench, "quality": rows}
