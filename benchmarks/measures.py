"""What bench computes from timings and outputs: latency percentiles, agreement with the reference."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgekit.numerics import row_cosines


def percentiles(latencies_s: list[float]) -> dict[str, float]:
    ms = np.asarray(latencies_s) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "std_ms": float(ms.std()),
        "min_ms": float(ms.min()),
    }


def agreement(
    reference: dict[str, np.ndarray], outputs: dict[str, np.ndarray], mask: np.ndarray | None
) -> dict[str, float]:
    """Max |diff| per output, and the mean cosine similarity of the main output per example
    (the pooled embedding where there is one, else token states under the attention mask)."""
    result: dict[str, float] = {}
    for name, ref in reference.items():
        if name in outputs and outputs[name].shape == ref.shape:
            result[f"max_abs_diff.{name}"] = float(np.max(np.abs(outputs[name].astype(np.float64) - ref)))
    common = [name for name in reference if name in outputs and outputs[name].shape == reference[name].shape]
    if not common:
        return result
    key = "sentence_embedding" if "sentence_embedding" in common else common[0]
    ref, got = reference[key].astype(np.float64), outputs[key].astype(np.float64)
    if ref.ndim == 3 and mask is not None:
        keep = mask.astype(bool)
        ref, got = ref[keep], got[keep]
    ref, got = ref.reshape(ref.shape[0], -1), got.reshape(got.shape[0], -1)
    result[f"cosine.{key}"] = float(row_cosines(ref, got).mean())
    return result


def reference_worker(worker: Any, workers: list) -> Any:
    """The PyTorch worker of ``worker``'s source model (the fp32 reference its rows compare with), or None."""
    return next((x for x in workers if x.source == worker.source and x.backend == "torch"), None)
