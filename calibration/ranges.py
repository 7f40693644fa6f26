"""Activation ranges from a calibration set: MinMax, entropy (KL) and percentile.

Ranges are collected once on the fp32 ONNX graph with ONNX Runtime (the tensors asked for are
added as graph outputs) and are shared by every backend: ONNX Runtime Q/DQ, TensorRT Q/DQ and its
calibration cache. They are cached on disk, keyed by the model file's hash, the calibration set's
fingerprint, the method and its settings, so a second build does not recalibrate.

Histograms are binned with integer arithmetic over a range fixed by a first MinMax pass, so no
tensor (constant, all-zero, tiny range) can fail the way ``numpy.histogram`` does with "Too many
bins for data range".
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from edgekit.errors import InputError, did_you_mean

log = logging.getLogger("edgekit.calibration")

METHODS = ("minmax", "entropy", "percentile")
CACHE_VERSION = 1


@dataclass(frozen=True)
class RangeMethod:
    name: str = "minmax"
    percentile: float = 99.999
    """For ``percentile``: the share of |values| kept inside the range."""
    bins: int = 2048
    """Histogram bins over [-absmax, absmax] for ``entropy`` and ``percentile``."""
    quantized_bins: int = 128
    """For ``entropy``: the levels of one sign of int8, as in TensorRT's KL calibration."""

    def check(self) -> "RangeMethod":
        if self.name not in METHODS:
            raise InputError(f"unknown calibration method '{self.name}'", did_you_mean(self.name, METHODS))
        if not 50.0 < self.percentile <= 100.0:
            raise InputError(
                f"--percentile must be in (50, 100], got {self.percentile}", "pass e.g. --percentile 99.999"
            )
        if self.bins < 2 * self.quantized_bins:
            raise InputError(
                f"histogram bins ({self.bins}) must be at least twice the quantized bins ({self.quantized_bins})",
                "use the defaults",
            )
        return self

    @property
    def needs_histogram(self) -> bool:
        return self.name != "minmax"


@dataclass
class Ranges:
    """Per-tensor [low, high] (float), plus per-channel |max| over the last axis where asked."""

    method: dict
    tensors: dict[str, tuple[float, float]]
    channel_absmax: dict[str, list[float]] = field(default_factory=dict)
    absmax: dict[str, float] = field(default_factory=dict)
    from_cache: bool = False

    def to_json(self) -> dict:
        return {
            "version": CACHE_VERSION,
            "method": self.method,
            "tensors": {k: list(v) for k, v in self.tensors.items()},
            "channel_absmax": self.channel_absmax,
            "absmax": self.absmax,
        }

    @classmethod
    def from_json(cls, data: dict) -> "Ranges":
        return cls(
            data["method"],
            {k: (float(v[0]), float(v[1])) for k, v in data["tensors"].items()},
            data.get("channel_absmax", {}),
            data.get("absmax", {}),
            from_cache=True,
        )


# ---------------------------------------------------------------- methods on one histogram


def fold(hist: Any) -> Any:
    """A signed histogram over [-a, a] (even bin count) to a histogram of |x| over [0, a]."""
    half = len(hist) // 2
    return hist[half:] + hist[:half][::-1]


def percentile_threshold(abs_hist: Any, absmax: float, percentile: float) -> float:
    """The smallest bin edge below which ``percentile`` % of the |values| fall."""
    import numpy as np

    total = abs_hist.sum()
    if total == 0 or absmax == 0:
        return 0.0
    cdf = np.cumsum(abs_hist) / total
    index = int(np.searchsorted(cdf, percentile / 100.0))
    return min(absmax, (index + 1) * absmax / len(abs_hist))


def entropy_threshold(
    abs_hist: Any, absmax: float, quantized_bins: int = 128, candidates: int = 256
) -> float:
    """TensorRT's KL-divergence calibration: the clip threshold whose ``quantized_bins``-level
    version of the |x| distribution loses the least information (smallest KL(P || Q)).

    For each candidate threshold (a bin edge i), P is the histogram up to i with the clipped
    tail added to its last bin, and Q is P merged into ``quantized_bins`` groups and spread back
    evenly over the non-empty bins of each group.
    """
    import numpy as np

    hist = np.asarray(abs_hist, dtype=np.float64)
    n = len(hist)
    if hist.sum() == 0 or absmax == 0:
        return 0.0
    if n <= quantized_bins:
        return absmax
    step = max(1, (n - quantized_bins) // candidates)
    best_i, best_kl = n, np.inf
    tail = np.cumsum(hist[::-1])[::-1]  # tail[i] = sum(hist[i:])
    for i in range(quantized_bins, n + 1, step):
        p = hist[:i].copy()
        if i < n:
            p[i - 1] += tail[i]
        nonzero = p > 0
        # merge into quantized_bins groups (group edges as TensorRT: integer split of i bins)
        edges = np.linspace(0, i, quantized_bins + 1).astype(int)
        src = hist[:i]
        present = src > 0
        sums = np.add.reduceat(src, edges[:-1])
        counts = np.add.reduceat(present.astype(np.float64), edges[:-1])
        per_bin = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        q = np.repeat(per_bin, np.diff(edges)) * present
        p_sum, q_sum = p.sum(), q.sum()
        if q_sum == 0:
            continue
        pn, qn = p / p_sum, q / q_sum
        with np.errstate(divide="ignore", invalid="ignore"):
            valid = nonzero & (qn > 0)
            kl = float(np.sum(pn[valid] * np.log(pn[valid] / qn[valid])))
            kl += float(pn[nonzero & (qn == 0)].sum()) * 30.0  # mass Q cannot express: heavily penalised
        if kl < best_kl:
            best_kl, best_i = kl, i
    return min(absmax, best_i * absmax / n)


def range_from_stats(
    low: float, high: float, abs_hist: Any | None, method: RangeMethod
) -> tuple[float, float]:
    """The quantization range of one tensor: always holds 0 (so zero is exact)."""
    low, high = min(low, 0.0), max(high, 0.0)
    if method.name == "minmax" or abs_hist is None:
        return low, high
    absmax = max(-low, high)
    if method.name == "percentile":
        threshold = percentile_threshold(abs_hist, absmax, method.percentile)
    else:
        threshold = entropy_threshold(abs_hist, absmax, method.quantized_bins)
    return max(low, -threshold), min(high, threshold)


# ---------------------------------------------------------------- collection on a graph


def _augmented_model(model_path: Path, tensors: list[str], folder: Path) -> Path:
    import onnx

    model = onnx.load(str(model_path))
    existing = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in existing:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    out = folder / "augmented.onnx"
    onnx.save(model, str(out), save_as_external_data=True, location="augmented.onnx.data")
    return out


def _session(path: Path, threads: int | None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def run_tensors(
    model_path: Path,
    feeds: list[dict[str, Any]],
    tensors: list[str],
    passes: int = 1,
    threads: int | None = None,
):
    """Yield ``(pass, {tensor: value})`` for every feed: the graph run with ``tensors`` as extra outputs."""
    with tempfile.TemporaryDirectory(prefix="edgekit-calib-") as tmp:
        session = _session(_augmented_model(model_path, tensors, Path(tmp)), threads)
        for pass_index in range(passes):
            for feed in feeds:
                yield pass_index, dict(zip(tensors, session.run(tensors, feed)))
        del session


def collect_tensors(
    model_path: Path, feeds: list[dict[str, Any]], tensors: list[str]
) -> dict[str, list[Any]]:
    """The values of ``tensors`` on every feed (for small feed sets: everything stays in memory)."""
    captured: dict[str, list[Any]] = {t: [] for t in tensors}
    for _, values in run_tensors(model_path, feeds, tensors):
        for name, value in values.items():
            captured[name].append(value)
    return captured


def collect(
    model_path: Path,
    feeds: list[dict[str, Any]],
    tensors: list[str],
    method: RangeMethod,
    channel_tensors: Iterable[str] = (),
    threads: int | None = None,
    progress: Any = None,
) -> Ranges:
    """Run the calibration feeds through the fp32 graph and reduce each tensor to a range.

    Pass 1 keeps min/max (and per-channel |max|); pass 2, for histogram methods, bins each value
    over [-absmax, absmax] of pass 1 with integer arithmetic."""
    import numpy as np

    if not feeds:
        raise InputError(
            "the calibration set is empty", "pass --calib with data that yields at least one sample"
        )
    channel_tensors = [t for t in channel_tensors if t in tensors]
    low = {t: np.inf for t in tensors}
    high = {t: -np.inf for t in tensors}
    chan: dict[str, Any] = {}
    hists: dict[str, Any] = {}
    for pass_index, values in run_tensors(
        model_path, feeds, tensors, 2 if method.needs_histogram else 1, threads
    ):
        for name, value in values.items():
            if pass_index == 0:
                if not np.all(np.isfinite(value)):
                    raise InputError(
                        f"tensor '{name}' holds inf or NaN on the calibration data",
                        "check the model in fp32 on that data before quantizing",
                    )
                if value.size:
                    low[name] = min(low[name], float(value.min()))
                    high[name] = max(high[name], float(value.max()))
                if name in channel_tensors:
                    per_channel = np.abs(value).reshape(-1, value.shape[-1]).max(0)
                    chan[name] = np.maximum(chan[name], per_channel) if name in chan else per_channel
            else:
                absmax = max(-low[name], high[name], 0.0)
                if absmax > 0:
                    idx = np.floor(
                        (value.astype(np.float64).ravel() + absmax) * (method.bins / (2 * absmax))
                    ).astype(np.int64)
                    counts = np.bincount(np.clip(idx, 0, method.bins - 1), minlength=method.bins)
                    hists[name] = hists.get(name, 0) + counts
        if progress is not None:
            progress()
    ranges, absmaxes = {}, {}
    for name in tensors:
        lo, hi = (low[name], high[name]) if np.isfinite(low[name]) else (0.0, 0.0)
        hist = hists.get(name)
        ranges[name] = range_from_stats(lo, hi, fold(hist) if hist is not None else None, method)
        absmaxes[name] = max(-lo, hi, 0.0)
    return Ranges(asdict(method), ranges, {k: [float(x) for x in v] for k, v in chan.items()}, absmaxes)


def cache_key(
    model_sha: str, calib_sha: str, tensors: list[str], method: RangeMethod, channel_tensors: Iterable[str]
) -> str:
    blob = json.dumps(
        {
            "v": CACHE_VERSION,
            "model": model_sha,
            "data": calib_sha,
            "tensors": sorted(tensors),
            "channels": sorted(channel_tensors),
            "method": asdict(method),
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def cached_ranges(
    model_path: Path,
    calib: Any,
    tensors: list[str],
    method: RangeMethod,
    channel_tensors: Iterable[str] = (),
    progress: Any = None,
) -> Ranges:
    """``collect`` behind a disk cache under ``<edgekit cache>/calibration``."""
    from edgekit.artifacts import cache_dir, sha256_file, write_json

    channel_tensors = list(channel_tensors)
    key = cache_key(sha256_file(model_path), calib.fingerprint, tensors, method, channel_tensors)
    file = cache_dir() / "calibration" / f"{key}.json"
    if file.is_file():
        try:
            ranges = Ranges.from_json(json.loads(file.read_text()))
            if set(ranges.tensors) == set(tensors):
                log.info("calibration ranges from cache %s", file)
                return ranges
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring unreadable calibration cache %s", file)
    ranges = collect(model_path, calib.feeds, tensors, method, channel_tensors, progress=progress)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".tmp{id(ranges)}")
    write_json(tmp, ranges.to_json())
    tmp.replace(file)
    return ranges
