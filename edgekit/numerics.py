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
