"""Small numpy helpers that quality figures share (bench, the accuracy guard): one definition each."""

from __future__ import annotations

from typing import Any

import numpy as np


def row_cosines(a: Any, b: Any) -> Any:
    """Cosine similarity of each row of ``a`` with the same row of ``b`` (float64; zero rows give 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def masked_mean(states: Any, mask: Any | None) -> Any:
    """Mean of token states (batch, tokens, hidden) over the real tokens of ``mask`` (batch, tokens)."""
    if mask is None:
        return states.mean(1)
    weights = np.asarray(mask)[..., None].astype(np.float32)
    return (states * weights).sum(1) / np.maximum(weights.sum(1), 1)


def recall_at(sims: Any, targets: Any, k: int) -> float:
    """Share of rows of ``sims`` (queries x candidates) whose target column is among the row's
    ``k`` highest scores (ties broken by column order)."""
    sims = np.asarray(sims)
    top = np.argsort(-sims, axis=1, kind="stable")[:, : min(k, sims.shape[1])]
    return float(np.mean([t in row for t, row in zip(targets, top)]))


def retrieval_scores(image: Any, text: Any, ref_image: Any = None, ref_text: Any = None) -> dict[str, float]:
    """Image-text retrieval on aligned pairs (row i of ``image`` belongs with row i of ``text``):
    recall of the own caption / image at 1 and 5, and, given a reference's embeddings, top-1
    agreement and recall at 1 and 5 of the reference's own best match, with each tower's mean
    cosine to the reference."""
    sims = np.asarray(image, np.float64) @ np.asarray(text, np.float64).T
    own = np.arange(sims.shape[0])
    out = {
        "i2t_r1": recall_at(sims, own, 1),
        "i2t_r5": recall_at(sims, own, 5),
        "t2i_r1": recall_at(sims.T, own, 1),
    }
    if ref_image is not None:
        ref = np.asarray(ref_image, np.float64) @ np.asarray(ref_text, np.float64).T
        for k in (1, 5):
            out[f"i2t_r{k}_vs_fp32"] = recall_at(sims, ref.argmax(1), k)
            out[f"t2i_r{k}_vs_fp32"] = recall_at(sims.T, ref.T.argmax(1), k)
        out["image_cosine"] = float(row_cosines(image, ref_image).mean())
        out["text_cosine"] = float(row_cosines(text, ref_text).mean())
    return out


def edit_distance(a: Any, b: Any) -> int:
    """Levenshtein distance between two sequences (characters of a string, or token ids)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def error_rate(references: list[str], hypotheses: list[str]) -> float:
    """Character error rate: edits over reference characters, summed over all pairs (both empty: 0)."""
    edits = sum(edit_distance(r, h) for r, h in zip(references, hypotheses))
    chars = sum(len(r) for r in references)
    return edits / chars if chars else float(any(hypotheses))
