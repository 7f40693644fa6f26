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


def interleaved(
    workers: list, per_block: int, rounds: int, verbose: bool, on_round=None
) -> dict[int, list[float]]:
    """Timed blocks of ``per_block`` runs of each worker's current inputs, ``rounds`` times, the
    worker that goes first rotating each round (so no backend always runs on a warm or cold
    cache); ``on_round`` is called after each round (a progress bar's advance)."""
    latencies: dict[int, list[float]] = {id(w): [] for w in workers}
    for r in range(rounds):
        for w in workers[r % len(workers) :] + workers[: r % len(workers)]:
            latencies[id(w)].extend(w.ask("time", per_block, verbose))
        if on_round is not None:
            on_round()
    return latencies


def case_rows(
    workers: list,
    args: Any,
    case: dict[str, Any],
    per_block: int,
    rounds: int,
    verbose: bool,
    on_round=None,
    model_bytes: Any = None,
    mask: Any = None,
) -> list[dict[str, Any]]:
    """One timed case: ``args(worker)`` (its inputs, warm-up, tower) sent to every worker, then
    interleaved timed blocks; a row per worker with ``case`` (batch, ...), the percentiles,
    throughput, model size (``model_bytes(worker)``, default the whole model) and the outputs'
    agreement with its source's PyTorch worker (``mask(worker)``: the attention mask, if any)."""
    outputs = {id(w): w.ask("inputs", args(w), verbose) for w in workers}
    latencies = interleaved(workers, per_block, rounds, verbose, on_round)
    rows = []
    for w in workers:
        row: dict[str, Any] = {
            "artifact": w.name,
            "backend": w.backend,
            **case,
            "runs": len(latencies[id(w)]),
        }
        row.update(percentiles(latencies[id(w)]))
        row["throughput_per_s"] = case["batch"] / (row["mean_ms"] / 1e3)
        row["model_mb"] = (model_bytes(w) if model_bytes else w.info["model_bytes"]) / 2**20
        ref = reference_worker(w, workers)
        if ref is not None:
            row.update(agreement(outputs[id(ref)], outputs[id(w)], mask(w) if mask else None))
        rows.append(row)
    return rows


VARIANTS = (("ort-int8", "ort", "int8"), ("ov-fp32", "openvino", "fp32"), ("ov-int8", "openvino", "int8"))
"""The variants the per-kind benchmarks time beside their fp32 ONNX export: folder, target, precision."""


def export_variants(
    model: Any, root: Any, calib: dict[str, Any], variants: tuple[tuple[str, str, str], ...] = VARIANTS
) -> list[Any]:
    """``model`` exported to ONNX fp32 (``root/fp32``), then each variant made from that artifact;
    ``calib`` (ExportConfig fields such as ``calib``, ``calib_text``) is given to the int8 ones."""
    from edgekit.export import ExportConfig, export_model

    fp32 = export_model(ExportConfig(model=model, out=root / "fp32"))
    outs = [fp32]
    for name, target, precision in variants:
        extra = calib if precision == "int8" else {}
        outs.append(
            export_model(
                ExportConfig(model=fp32, out=root / name, target=target, precision=precision, **extra)
            )
        )
    return outs
