"""Q/DQ structure, the rewrites around it, and the arithmetic of fake quantization, on a tiny
BERT exported through the real path (random weights: structure and exactness, not accuracy)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgekit.calibration.dataset import CalibrationSet
from edgekit.calibration.ranges import RangeMethod, collect
from edgekit.compress.ort_quant import (
    QuantTarget,
    activation_qparams,
    fake_quant_activation,
    fake_quant_weight,
    fuse_matmul_bias,
    load_with_shapes,
    quantize_dynamic_int8,
    quantize_static_qdq,
    save_onnx,
    weight_matmuls,
)
from edgekit.compress.smooth import smooth_factors, smooth_quant, smoothable


@pytest.fixture(scope="module")
def tiny_onnx(tiny_models, tmp_path_factory):
    from edgekit.export import ExportConfig, export_model

    folder = tiny_models("bert")
    out = export_model(ExportConfig(model=folder, out=tmp_path_factory.mktemp("q") / "fp32"), quiet=True)
    from transformers import AutoTokenizer

    from edgekit.calibration.text import sample_texts

    tok = AutoTokenizer.from_pretrained(str(folder))
    feeds = []
    for text in sample_texts()[:12]:
        enc = tok([text], padding="max_length", truncation=True, max_length=32, return_tensors="np")
        feeds.append({k: enc[k].astype(np.int64) for k in ("input_ids", "token_type_ids", "attention_mask")})
    return out / "model.onnx", feeds


def _run(path, feeds):
    import onnxruntime as ort

    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return [s.run(["last_hidden_state"], f)[0] for f in feeds]


def _quantized(tmp_path, tiny_onnx, **kwargs):
    src, feeds = tiny_onnx
    target = weight_matmuls(onnx.load(str(src)))
    ranges = collect(src, feeds, target.activations, RangeMethod("minmax"))
    out = tmp_path / "q.onnx"
    quantize_static_qdq(load_with_shapes(src), out, ranges.tensors, target.nodes, **kwargs)
    return out, target


def test_save_inline_removes_the_stale_external_data_of_the_graph_it_replaces(tmp_path, tiny_onnx):
    """A >2 GB fp32 graph keeps its weights in model.onnx.data; quantized or fp16 in place it fits
    inline, and the old data file must not stay behind (it would also count in the model size)."""
    src, feeds = tiny_onnx
    out = tmp_path / "model.onnx"
    onnx.save(
        onnx.load(str(src)),
        str(out),
        save_as_external_data=True,
        location="model.onnx.data",
        size_threshold=0,
    )
    assert (tmp_path / "model.onnx.data").stat().st_size > 10_000
    model = onnx.load(str(out))  # weights read into memory
    save_onnx(model, out)
    assert not (tmp_path / "model.onnx.data").exists()
    np.testing.assert_array_equal(_run(out, feeds[:1])[0], _run(src, feeds[:1])[0])


def test_weight_matmuls_are_the_linear_layers(tiny_onnx):
    target = weight_matmuls(onnx.load(str(tiny_onnx[0])))
    assert len(target.nodes) == 2 * 6  # per layer: q, k, v, attention out, ffn up, ffn down
    assert len(target.activations) == 2 * 4  # q/k/v share their input


def test_qdq_structure_uint8_activations_symmetric_per_channel_weights(tmp_path, tiny_onnx):
    out, target = _quantized(tmp_path, tiny_onnx)
    model = onnx.load(str(out))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    dqs = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    weight_dqs = [n for n in dqs if inits.get(n.input[0]) is not None and inits[n.input[0]].ndim == 2]
    assert len(weight_dqs) == len(target.nodes)
    for dq in weight_dqs:
        assert inits[dq.input[0]].dtype == np.int8
        assert {a.name: a.i for a in dq.attribute}.get("axis") == 1  # per output channel of [K, N]
        assert (
            inits[dq.input[2]].shape == (inits[dq.input[0]].shape[1],) and not inits[dq.input[2]].any()
        )  # symmetric: zero points 0
    qs = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert len(qs) == len(target.activations)
    assert all(inits[q.input[2]].dtype == np.uint8 for q in qs)
    # the residual Adds read the float tensor, not the rounded one
    dq_outputs = {n.output[0] for n in dqs}
    assert not [n for n in model.graph.node if n.op_type == "Add" and set(n.input) & dq_outputs]


def test_symmetric_activations_for_tensorrt(tmp_path, tiny_onnx):
    out, _ = _quantized(tmp_path, tiny_onnx, symmetric_activations=True)
    model = onnx.load(str(out))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for q in (n for n in model.graph.node if n.op_type == "QuantizeLinear"):
        zp = inits[q.input[2]]
        assert zp.dtype == np.int8 and not zp.any()


def test_fused_form_computes_the_same(tmp_path, tiny_onnx):
    src, feeds = tiny_onnx
    plain, target = _quantized(tmp_path, tiny_onnx)
    model = onnx.load(str(plain))
    assert fuse_matmul_bias(model) == len(target.nodes)
    fused = tmp_path / "fused.onnx"
    onnx.save(model, str(fused))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulIntegerToFloat") == len(target.nodes) and "DequantizeLinear" not in ops
    for a, b in zip(_run(plain, feeds), _run(fused, feeds)):
        np.testing.assert_allclose(a, b, atol=1e-4)
    reference = _run(src, feeds)
    err = max(float(np.abs(a - r).max()) for a, r in zip(_run(fused, feeds), reference))
    assert 0 < err < 0.5  # quantized: not identical, not broken


def test_smoothing_is_exact_in_fp32(tmp_path, tiny_onnx):
    src, feeds = tiny_onnx
    model = onnx.load(str(src))
    target = weight_matmuls(model)
    acts = smoothable(model, target)
    assert acts and len(acts) < len(
        target.activations
    )  # the FFN down-projection input (after GELU) is left alone
    stats = collect(src, feeds, acts, RangeMethod("minmax"), channel_tensors=acts)
    smooth_quant(model, QuantTarget(target.nodes, acts), stats.channel_absmax, 0.8)
    out = tmp_path / "smoothed.onnx"
    onnx.save(model, str(out))
    assert [n.op_type for n in model.graph.node].count("Mul") > [
        n.op_type for n in onnx.load(str(src)).graph.node
    ].count("Mul")
    for a, b in zip(_run(src, feeds), _run(out, feeds)):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_smooth_factors_by_hand():
    # s = a^0.5 / w^0.5: channel 0 (a=16, w=1) -> 4; channel 1 (a=1, w=4) -> 0.5; a zero channel -> 1
    assert smooth_factors([16.0, 1.0, 0.0], [1.0, 4.0, 2.0], 0.5).tolist() == [4.0, 0.5, 1.0]


def test_fake_quant_by_hand():
    assert activation_qparams(0.0, 2.55) == pytest.approx((0.01, 0))
    scale, zero = activation_qparams(-1.0, 1.55)  # 2.55 / 255 = 0.01, zero point 100
    assert (scale, zero) == (pytest.approx(0.01), 100)
    np.testing.assert_allclose(
        fake_quant_activation(np.array([0.014, -2.0, 0.0]), -1.0, 1.55), [0.01, -1.0, 0.0], atol=1e-7
    )
    w = np.array([[1.0, 0.5], [-2.54, 0.25]], np.float32)  # column scales 2.54/127 = 0.02 and 0.5/127
    np.testing.assert_allclose(fake_quant_weight(w)[:, 0], [1.0, -2.54], atol=1e-6)
    np.testing.assert_allclose(
        fake_quant_weight(w)[:, 1], [0.5, np.round(0.25 / (0.5 / 127)) * 0.5 / 127], atol=1e-7
    )


def test_dynamic_quantization_structure(tmp_path, tiny_onnx):
    src, feeds = tiny_onnx
    target = weight_matmuls(onnx.load(str(src)))
    out = tmp_path / "dyn.onnx"
    quantize_dynamic_int8(src, out, target.nodes)
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert ops.count("MatMulInteger") == len(target.nodes) and ops.count("DynamicQuantizeLinear") >= len(
        target.activations
    )
    assert all(np.isfinite(o).all() for o in _run(out, feeds))


def test_calibration_set_fingerprint_tracks_the_bytes():
    a = CalibrationSet([{"x": np.zeros((1, 4), np.int64)}], "text", "a")
    b = CalibrationSet([{"x": np.zeros((1, 4), np.int64)}], "text", "b")
    c = CalibrationSet([{"x": np.ones((1, 4), np.int64)}], "text", "a")
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_the_guard_never_builds_a_model_with_every_node_in_float():
    """ONNX Runtime reads an empty node list as "quantize every node": the guard stops with its
    own error one node before that, however high --max-float-nodes is."""
    from edgekit.compress.quality import EvalSet, guarded
    from edgekit.errors import ValidationError

    class Steps:
        def step(self, *_):
            import contextlib

            return contextlib.nullcontext()

    class Noisy:  # a built candidate whose embeddings never agree with the reference
        def run(self, feeds, names):
            return {"e": np.array([[1.0, 0.0], [0.0, 1.0]])}

    evalset = EvalSet([{"x": np.zeros(2)}], None, "two rows", "e", partner=np.eye(2))
    evalset.reference = [np.array([[0.0, 1.0], [1.0, 0.0]])]
    builds: list[list[str]] = []
    with pytest.raises(ValidationError, match="cannot meet --max-drop 0"):
        guarded(
            lambda kept: builds.append(list(kept)) or Noisy(),
            lambda: ["a", "b", "c"],
            evalset,
            0.0,
            99,
            0,
            Steps(),
        )
    assert builds == [[], ["a"], ["a", "b"]]
