"""Range methods against values worked out by hand, and collection on a small real ONNX graph."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.calibration.ranges import (
    RangeMethod,
    cached_ranges,
    collect,
    entropy_threshold,
    fold,
    percentile_threshold,
    range_from_stats,
)
from edgekit.errors import InputError


def test_fold_adds_mirror_bins():
    # signed bins over [-2, 2] with width 1: [-2,-1) [-1,0) [0,1) [1,2)
    assert fold(np.array([1, 2, 3, 4])).tolist() == [3 + 2, 4 + 1]


def test_percentile_threshold_by_hand():
    hist = np.array([50, 30, 15, 5])  # |x| over [0, 4): bin width 1
    assert percentile_threshold(hist, 4.0, 50) == 1.0  # 50% of the mass lies in the first bin
    assert percentile_threshold(hist, 4.0, 80) == 2.0  # 50 + 30 = 80%
    assert percentile_threshold(hist, 4.0, 96) == 4.0
    assert percentile_threshold(np.zeros(4), 0.0, 99) == 0.0


def test_minmax_range_always_holds_zero():
    method = RangeMethod("minmax")
    assert range_from_stats(0.5, 3.0, None, method) == (0.0, 3.0)
    assert range_from_stats(-2.0, -1.0, None, method) == (-2.0, 0.0)


def test_entropy_clips_a_lone_outlier_and_keeps_a_dense_range():
    dense = np.zeros(2048)
    dense[:1024] = 100.0  # uniform mass over the lower half of [0, absmax]
    assert entropy_threshold(dense, 8.0) == pytest.approx(4.0, rel=0.05)  # nothing to gain beyond the mass
    spiky = dense.copy()
    spiky[2047] = 1  # one value at absmax
    assert entropy_threshold(spiky, 8.0) < 5.0  # the outlier is clipped, not given a quarter of the levels
    full = np.full(2048, 10.0)
    assert entropy_threshold(full, 8.0) == pytest.approx(8.0, rel=0.02)  # mass everywhere: keep everything


def test_method_checks():
    with pytest.raises(InputError, match="unknown calibration method 'entopy'"):
        RangeMethod("entopy").check()
    with pytest.raises(InputError, match="--percentile"):
        RangeMethod("percentile", percentile=20).check()


def _graph(path):
    """y = relu(x @ W), and a constant-zero tensor z = x * 0 (what trips numpy.histogram)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.eye(4, dtype=np.float32) * 2, "W")
    zero = numpy_helper.from_array(np.zeros((), np.float32), "zero")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
        helper.make_node("Relu", ["h"], ["y"], name="relu"),
        helper.make_node("Mul", ["x", "zero"], ["z"], name="mul"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [None, 4]),
        ],
        [w, zero],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), str(path))
    return path


def _feeds(seed=0, n=6):
    rng = np.random.default_rng(seed)
    feeds = [{"x": rng.normal(size=(8, 4)).astype(np.float32)} for _ in range(n)]
    feeds[0]["x"][0, 0] = 40.0  # one outlier
    return feeds


@pytest.mark.parametrize("name", ["minmax", "entropy", "percentile"])
def test_each_method_on_a_real_graph(tmp_path, name):
    feeds = _feeds()
    ranges = collect(
        _graph(tmp_path / "g.onnx"),
        feeds,
        ["x", "h", "z"],
        RangeMethod(name, percentile=99.0),
        channel_tensors=["h"],
    )
    xs = np.concatenate([f["x"] for f in feeds])
    lo, hi = ranges.tensors["x"]
    assert ranges.tensors["z"] == (0.0, 0.0)  # constant zero: no error, empty range
    assert ranges.absmax["h"] == pytest.approx(80.0)
    assert ranges.channel_absmax["h"] == pytest.approx(list(np.abs(xs * 2).max(0)))
    if name == "minmax":
        assert (lo, hi) == (pytest.approx(float(xs.min())), pytest.approx(40.0))
    else:  # the lone outlier at 40 is clipped; the bulk (|x| < 4) is kept
        assert 2.0 < hi < 20.0 and lo >= xs.min()


def test_inf_on_calibration_data_is_reported(tmp_path):
    feeds = [{"x": np.full((2, 4), np.inf, np.float32)}]
    with pytest.raises(InputError, match="inf or NaN"):
        collect(_graph(tmp_path / "g.onnx"), feeds, ["h"], RangeMethod())


def test_cache_reuse_and_keys(tmp_path, monkeypatch):
    from edgekit.calibration.dataset import CalibrationSet

    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    graph = _graph(tmp_path / "g.onnx")
    calib = CalibrationSet(_feeds(), "test", "synthetic")
    first = cached_ranges(graph, calib, ["x", "h"], RangeMethod("percentile"))
    again = cached_ranges(graph, calib, ["x", "h"], RangeMethod("percentile"))
    assert not first.from_cache and again.from_cache and again.tensors == first.tensors
    other = cached_ranges(graph, calib, ["x", "h"], RangeMethod("minmax"))  # another method: recalibrated
    assert not other.from_cache
    changed = cached_ranges(
        graph, CalibrationSet(_feeds(seed=1), "test", "synthetic"), ["x", "h"], RangeMethod("percentile")
    )
    assert not changed.from_cache  # other data: recalibrated
    assert len(list((tmp_path / "cache" / "calibration").glob("*.json"))) == 3
