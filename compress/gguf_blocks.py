"""A GGUF's own quantized weights in an ONNX Runtime graph, bit for bit: no second quantization.

A GGUF-quantized weight of N output rows and K inputs is stored in blocks of 32 inputs, each with
an fp16 scale ``d`` (and for Q4_1 an fp16 offset ``m``):

    Q4_0: w = d * (q - 8), q in 0..15        Q4_1: w = d * q + m        Q8_0: w = d * q, q in -128..127

``com.microsoft.MatMulNBits`` stores blocks of 32 the same way (``w = scale * (q - zero_point)``),
so Q4_0 and Q8_0 map onto it exactly (Q8_0 as unsigned codes ``q + 128`` around 128). Q4_1's
offset is no integer zero point. MatMulNBits does take float zero points (``zp = -m / d``), but
ONNX Runtime's CPU kernel then dequantizes the whole matrix on every call (measured: 80x slower
than integer zero points). So a Q4_1 MatMul becomes the exact split of the same sum,

    x @ w.T = MatMulNBits(x; q, d, zero point 0) + (x summed per block of 32) @ m.T

two small float MatMuls beside the 4-bit one (the per-block sums of an input are computed once and
shared by every weight that reads it).

Which graph weight is which GGUF tensor is found by value, not by name: the fp32 graph was
exported from the GGUF's dequantized weights, so each weight equals one GGUF tensor dequantized,
up to a permutation of its output rows (llama's query/key rows are reordered by the GGUF
converter). Every row is matched, which also proves the blocks reproduce that weight exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BLOCK = 32
KINDS = ("Q4_0", "Q4_1", "Q8_0")
"""GGUF weight types kept as they are; any other type (K-quants, F16) stays a float MatMul."""


@dataclass
class Blocks:
    """One GGUF weight in MatMulNBits terms: codes [N, K] (unsigned), scales and offsets [N, K/32]."""

    kind: str
    codes: np.ndarray
    scales: np.ndarray
    zero_point: int
    offsets: np.ndarray | None = None

    @property
    def bits(self) -> int:
        return 8 if self.kind == "Q8_0" else 4

    def dequantized(self) -> np.ndarray:
        """The weight [N, K] as gguf-py's dequantize computes it (same operations, same float32 bits)."""
        n, k = self.codes.shape
        q = self.codes.reshape(n, k // BLOCK, BLOCK).astype(np.float32) - np.float32(self.zero_point)
        w = self.scales[..., None] * q
        if self.offsets is not None:
            w = w + self.offsets[..., None]
        return w.reshape(n, k)

    def take_rows(self, rows: np.ndarray) -> Blocks:
        offsets = None if self.offsets is None else self.offsets[rows]
        return Blocks(self.kind, self.codes[rows], self.scales[rows], self.zero_point, offsets)


def read_blocks(kind: str, raw: np.ndarray, n: int, k: int) -> Blocks:
    """Parse a GGUF tensor's bytes ([n, k/32 * block bytes] uint8) into codes, scales and offsets."""
    nb = k // BLOCK
    raw = np.ascontiguousarray(raw, dtype=np.uint8).reshape(n, nb, -1)
    scales = raw[..., 0:2].copy().view(np.float16)[..., 0].astype(np.float32)
    if kind == "Q8_0":
        codes = (raw[..., 2:].view(np.int8).astype(np.int16) + 128).astype(np.uint8)
        return Blocks(kind, codes.reshape(n, k), scales, 128)
    start = 4 if kind == "Q4_1" else 2
    packed = raw[..., start:]  # byte j: element j in the low nibble, element j + 16 in the high one
    codes = np.concatenate([packed & 0x0F, packed >> 4], axis=-1).reshape(n, k)
    if kind == "Q4_1":
        offsets = raw[..., 2:4].copy().view(np.float16)[..., 0].astype(np.float32)
        return Blocks(kind, codes, scales, 0, offsets)
    return Blocks(kind, codes, scales, 8)


def gguf_weights(path: Path) -> list[Blocks]:
    """Every 2-D weight of the GGUF file stored as Q4_0, Q4_1 or Q8_0 with K a multiple of 32."""
    import gguf

    reader = gguf.GGUFReader(str(path))
    out = []
    for tensor in reader.tensors:
        kind = tensor.tensor_type.name
        if kind not in KINDS or len(tensor.shape) != 2:
            continue
        k, n = (int(d) for d in tensor.shape)  # GGUF lists the fastest-varying dimension first
        if k % BLOCK == 0:
            out.append(read_blocks(kind, tensor.data, n, k))
    return out


def _row_keys(w: np.ndarray) -> list[bytes]:
    return np.ascontiguousarray(w).view(np.dtype((np.void, w.shape[1] * w.itemsize))).ravel().tolist()


class BlockIndex:
    """Finds the GGUF blocks whose dequantized rows are exactly a graph weight's rows: all of one
    tensor's, reordered, or the rows of several concatenated (a merged query/key/value projection)."""

    def __init__(self, weights: list[Blocks]):
        self.weights = weights
        self.rows: dict[int, dict[bytes, tuple[int, int]]] = {}  # K -> row bytes -> (weight, row)
        for w, b in enumerate(weights):
            index = self.rows.setdefault(b.codes.shape[1], {})
            for r, key in enumerate(_row_keys(b.dequantized())):
                index.setdefault(key, (w, r))

    def find(self, w: np.ndarray) -> Blocks | None:
        """The blocks of the weight [N, K] ``w``, or None if any row is no GGUF row (or the rows
        come from tensors of different types)."""
        index = self.rows.get(w.shape[1], {})
        found = [index.get(key) for key in _row_keys(np.asarray(w, dtype=np.float32))]
        if None in found or len({self.weights[t].kind for t, _ in found}) != 1:
            return None
        first = self.weights[found[0][0]]
        if all(t == found[0][0] for t, _ in found):
            return first.take_rows(np.asarray([r for _, r in found]))
        parts = [self.weights[t].take_rows(np.asarray([r])) for t, r in found]
        offsets = None if first.offsets is None else np.concatenate([p.offsets for p in parts])
        return Blocks(
            first.kind,
            np.concatenate([p.codes for p in parts]),
            np.concatenate([p.scales for p in parts]),
            first.zero_point,
            offsets,
        )


def pack(blocks: Blocks) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """MatMulNBits inputs: B [N, K/32, 32*bits/8] uint8, scales [N*K/32], zero points (uint8, packed)."""
    n, k = blocks.codes.shape
    nb = k // BLOCK
    codes = blocks.codes.reshape(n, nb, BLOCK)
    if blocks.bits == 4:
        b = (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)
        zp = None if blocks.zero_point == 8 else np.zeros((n, (nb + 1) // 2), np.uint8)  # Q4_1: zero point 0
    else:
        b = codes.astype(np.uint8)
        zp = None  # 8-bit default zero point is 128
    return b, blocks.scales.reshape(-1).astype(np.float32), None if zp is None else zp.reshape(-1)


def block_sum_matrix(k: int) -> np.ndarray:
    """P [K, K/32] with P[i, i // 32] = 1: ``x @ P`` sums x per block of 32 inputs."""
    p = np.zeros((k, k // BLOCK), np.float32)
    p[np.arange(k), np.arange(k) // BLOCK] = 1.0
    return p


def rewrite(model: Any, index: BlockIndex, accuracy_level: int) -> dict[str, int]:
    """Replace every MatMul whose constant weight is a GGUF tensor with its blocks (in place)."""
    from onnx import helper, numpy_helper

    from edgekit.compress.onnx_edit import drop_unused_initializers, use_contrib_domain

    inits = {i.name: i for i in model.graph.initializer}
    new_nodes, new_inits, sums, counts = [], [], {}, {k: 0 for k in (*KINDS, "float")}
    for node in model.graph.node:
        init = inits.get(node.input[1]) if node.op_type == "MatMul" else None
        blocks = None
        if init is not None and len(init.dims) == 2:
            blocks = index.find(numpy_helper.to_array(init).T)
        if blocks is None:
            counts["float"] += node.op_type == "MatMul"
            new_nodes.append(node)
            continue
        counts[blocks.kind] += 1
        n, k = blocks.codes.shape
        b, scales, zp = pack(blocks)
        base = node.name or node.output[0]
        names = [f"{base}.gguf_q", f"{base}.gguf_scales"] + ([f"{base}.gguf_zp"] if zp is not None else [])
        new_inits += [numpy_helper.from_array(a, nm) for a, nm in zip((b, scales, zp), names)]
        main_out = node.output[0] if blocks.offsets is None else f"{base}.gguf_main"
        new_nodes.append(
            helper.make_node(
                "MatMulNBits",
                [node.input[0], *names],
                [main_out],
                name=f"{base}.gguf",
                domain="com.microsoft",
                K=k,
                N=n,
                bits=blocks.bits,
                block_size=BLOCK,
                accuracy_level=accuracy_level,
            )
        )
        if blocks.offsets is not None:  # Q4_1: + (x summed per block) @ m.T
            x = node.input[0]
            if (x, k) not in sums:
                sums[(x, k)] = f"{x}.gguf_block_sums"
                new_inits.append(numpy_helper.from_array(block_sum_matrix(k), f"{x}.gguf_block_sum_matrix"))
                new_nodes.append(
                    helper.make_node(
                        "MatMul", [x, f"{x}.gguf_block_sum_matrix"], [sums[(x, k)]], name=f"{x}.gguf_sum"
                    )
                )
            new_inits.append(
                numpy_helper.from_array(np.ascontiguousarray(blocks.offsets.T), f"{base}.gguf_offsets")
            )
            new_nodes += [
                helper.make_node(
                    "MatMul",
                    [sums[(x, k)], f"{base}.gguf_offsets"],
                    [f"{base}.gguf_off"],
                    name=f"{base}.gguf_off",
                ),
                helper.make_node(
                    "Add", [main_out, f"{base}.gguf_off"], [node.output[0]], name=f"{base}.gguf_add"
                ),
            ]
    del model.graph.node[:]
    model.graph.node.extend(new_nodes)
    model.graph.initializer.extend(new_inits)
    drop_unused_initializers(model)
    use_contrib_domain(model)
    return counts


GGUF_ACCURACY_LEVEL = 4
"""MatMulNBits computes with int8 activations per block of 32, as llama.cpp does for these types."""


def ort_from_gguf(
    src: Path, out: Path, gguf_file: Path, accuracy_level: int, exact_out: Path | None = None
) -> dict:
    """The fp32 graph ``src`` with the GGUF's Q4_0/Q4_1/Q8_0 weights put back as they are stored,
    computing at ``accuracy_level``; ``exact_out`` also gets the same graph with float compute
    (accuracy level 0), which matches the dequantized model to float rounding."""
    import onnx

    from edgekit.compress.onnx_edit import save_with_external_data
    from edgekit.compress.weight_only import materialize_transposed_weights

    model = onnx.load(str(src))
    materialized = materialize_transposed_weights(model)
    counts = rewrite(model, BlockIndex(gguf_weights(gguf_file)), 0)
    if exact_out is not None:  # saving with external data empties the tensors it writes: save a copy
        exact = onnx.ModelProto()
        exact.CopyFrom(model)
        save_with_external_data(exact, exact_out)
    for node in model.graph.node:
        if node.op_type == "MatMulNBits":
            next(a for a in node.attribute if a.name == "accuracy_level").i = accuracy_level
    save_with_external_data(model, out)
    return {
        "mode": "weight-only",
        "weights": "the GGUF's own blocks of 32 ("
        + ", ".join(f"{counts[k]} {k}" for k in KINDS if counts[k])
        + ")",
        "op": "com.microsoft.MatMulNBits",
        "accuracy_level": accuracy_level,
        "gguf_file": gguf_file.name,
        "gguf_matmuls": {k: counts[k] for k in KINDS},
        "float_matmuls": counts["float"],
        "materialized_transposed_weights": materialized,
    }
