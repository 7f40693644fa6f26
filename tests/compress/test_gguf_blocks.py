"""GGUF blocks in an ONNX Runtime graph (compress/gguf_blocks.py): parsing matches gguf-py's own
dequantization bit for bit, each graph weight is found by value (rows permuted as llama's query and
key rows are), and the rewritten graph computes the same products on ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from edgekit.compress.gguf_blocks import KINDS, BlockIndex, read_blocks, rewrite  # noqa: E402

N, K = 48, 96


def _quantized(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw GGUF bytes of a random [N, K] weight, and gguf-py's dequantization of them."""
    qtype = gguf.GGMLQuantizationType[kind]
    w = np.random.default_rng(seed).normal(0, 0.05, (N, K)).astype(np.float32)
    raw = gguf.quants.quantize(w, qtype)
    return raw, gguf.quants.dequantize(raw, qtype)


@pytest.mark.parametrize("kind", KINDS)
def test_blocks_dequantize_like_gguf(kind):
    raw, expected = _quantized(kind, 0)
    blocks = read_blocks(kind, raw, N, K)
    assert blocks.codes.shape == (N, K) and blocks.scales.shape == (N, K // 32)
    assert blocks.codes.max() <= (255 if kind == "Q8_0" else 15)
    np.testing.assert_array_equal(blocks.dequantized(), expected)


def test_index_finds_permuted_rows_and_nothing_else():
    raw, w = _quantized("Q4_1", 1)
    index = BlockIndex([read_blocks("Q4_1", raw, N, K)])
    perm = np.random.default_rng(2).permutation(N)
    found = index.find(w[perm])
    assert found is not None
    np.testing.assert_array_equal(found.dequantized(), w[perm])
    assert index.find(w[perm] + 1e-3) is None  # a weight that is not the GGUF's stays float
    assert index.find(w[:, : K // 2]) is None


def test_index_finds_concatenated_tensors():
    """A merged query/key/value weight is the rows of three GGUF tensors, one after the other."""
    parts = [_quantized("Q4_1", 10 + i) for i in range(3)]
    index = BlockIndex([read_blocks("Q4_1", raw, N, K) for raw, _ in parts])
    merged = np.concatenate([parts[0][1], parts[1][1][::-1], parts[2][1]])
    found = index.find(merged)
    assert found is not None and found.codes.shape == (3 * N, K)
    np.testing.assert_array_equal(found.dequantized(), merged)
    q8_raw, q8 = _quantized("Q8_0", 20)
    mixed = BlockIndex([read_blocks("Q4_1", parts[0][0], N, K), read_blocks("Q8_0", q8_raw, N, K)])
    assert mixed.find(np.concatenate([parts[0][1], q8])) is None  # one MatMulNBits holds one type


def _graph(weights: dict[str, np.ndarray], shared: tuple[str, ...]):
    """x [2, 3, K] -> MatMul per weight; ``shared`` weights read the same input ``x``, the others
    read ``x * 2`` (so block sums are computed once per input)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Mul", ["x", "two"], ["x2"])]
    inits = [numpy_helper.from_array(np.asarray(2.0, np.float32), "two")]
    outputs = []
    for name, w in weights.items():
        src = "x" if name in shared else "x2"
        inits.append(numpy_helper.from_array(np.ascontiguousarray(w.T), f"w_{name}"))
        nodes.append(helper.make_node("MatMul", [src, f"w_{name}"], [f"y_{name}"], name=f"mm_{name}"))
        outputs.append(helper.make_tensor_value_info(f"y_{name}", TensorProto.FLOAT, [2, 3, w.shape[0]]))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, K])], outputs, inits
    )
    return helper.make_model(graph, ir_version=10, opset_imports=[helper.make_opsetid("", 20)])


@pytest.mark.parametrize("level,rtol", [(0, 1e-5), (4, 3e-2)])
def test_rewritten_graph_computes_the_blocks(level, rtol):
    import onnxruntime as ort

    parts = {kind: _quantized(kind, 3 + i) for i, kind in enumerate(KINDS)}
    raw_b, w_b = _quantized("Q4_1", 9)  # a second Q4_1 weight on the same input: one block sum
    blocks = [read_blocks(k, raw, N, K) for k, (raw, _) in parts.items()] + [read_blocks("Q4_1", raw_b, N, K)]
    rows = np.random.default_rng(4).permutation(N)
    weights = {k: w for k, (_, w) in parts.items()} | {"Q4_1b": w_b[rows]}
    weights["float"] = np.random.default_rng(5).normal(0, 0.05, (N, K)).astype(np.float32)
    model = _graph(weights, shared=("Q4_1", "Q4_1b", "float"))
    counts = rewrite(model, BlockIndex(blocks), level)
    assert counts == {"Q4_0": 1, "Q4_1": 2, "Q8_0": 1, "float": 1}
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulNBits") == 4
    assert sum(n.name.endswith(".gguf_sum") for n in model.graph.node) == 1  # shared by both Q4_1 weights
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(6).normal(0, 1, (2, 3, K)).astype(np.float32)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x})))
    for name, w in weights.items():
        src = x if name in ("Q4_1", "Q4_1b", "float") else 2 * x
        expected = src.astype(np.float64) @ w.T.astype(np.float64)
        err = np.abs(got[f"y_{name}"] - expected).max() / np.abs(expected).max()
        assert err < (1e-5 if name == "float" else rtol), (name, err)


def test_find_gguf(tmp_path):
    from edgekit.errors import InputError
    from edgekit.models.gguf import find_gguf

    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "m.gguf").write_bytes(b"GGUF")
    assert find_gguf(tmp_path / "one") == tmp_path / "one" / "m.gguf"
    assert find_gguf(tmp_path / "one" / "m.gguf") == tmp_path / "one" / "m.gguf"
    (tmp_path / "one" / "config.json").write_text("{}")  # an HF folder with a GGUF beside it: the folder
    assert find_gguf(tmp_path / "one") is None
    (tmp_path / "two").mkdir()
    for name in ("a.gguf", "b.GGUF"):
        (tmp_path / "two" / name).write_bytes(b"GGUF")
    with pytest.raises(InputError, match="holds 2 GGUF files"):
        find_gguf(tmp_path / "two")
    (tmp_path / "x.bin").write_bytes(b"")
    assert find_gguf(tmp_path / "x.bin") is None
