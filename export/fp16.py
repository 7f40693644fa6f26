"""fp16 ONNX graphs with fp32 islands: ONNX Runtime's float16 converter, with the nodes whose
range or precision fp16 cannot hold kept in fp32 (normalisation statistics, softmax sums, RMSNorm's
squares, rotary angles), and without the fp32 -> fp16 -> fp32 round trips the converter puts
between two kept nodes. Used by the TensorRT target; any fp16 ONNX target can use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

FP16_MAX = 65504.0
FP32_OPS = ("LayerNormalization", "Softmax")
"""Kept in fp32 in the fp16 graph: normalisation statistics and softmax sums lose the most in fp16."""

DECODER_FP32_OPS = (*FP32_OPS, "Pow", "ReduceMean")
"""A decoder's fp16 graph also keeps RMSNorm's statistics in fp32 (squares of hidden states of a
few hundred overflow fp16's 65504); see also ``norm_statistics_nodes`` and ``rotary_nodes``."""


def rotary_nodes(model: Any) -> list[str]:
    """Nodes that compute rotary-embedding angles and their cos/sin: every ancestor of a Cos or Sin
    node. They stay fp32 in an fp16 graph: an angle of position x frequency reaches ~2000 radians at
    position 2048, where fp16's spacing is 1-2 radians."""
    produced_by = {out: node for node in model.graph.node for out in node.output}
    todo = [node for node in model.graph.node if node.op_type in ("Cos", "Sin")]
    seen: dict[str, Any] = {}
    while todo:
        node = todo.pop()
        if node.name in seen:
            continue
        seen[node.name] = node
        todo += [produced_by[i] for i in node.input if i in produced_by]
    return sorted(seen)


def norm_statistics_nodes(model: Any) -> list[str]:
    """What follows each ReduceMean up to the reciprocal: RMSNorm's ``mean(x^2) + eps``, ``sqrt``,
    ``1 / .`` (and LayerNorm's decomposed variance). Kept fp32 with the ReduceMean: a mean of
    squares of hidden states with outlier channels passes fp16's 65504."""
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    picked: list[str] = []
    for node in model.graph.node:
        if node.op_type != "ReduceMean":
            continue
        frontier = [node]
        while frontier:
            current = frontier.pop()
            for nxt in (c for out in current.output for c in consumers.get(out, [])):
                if nxt.op_type in ("Add", "Sqrt", "Reciprocal", "Div") and nxt.name not in picked:
                    picked.append(nxt.name)
                    if nxt.op_type != "Reciprocal" and nxt.op_type != "Div":
                        frontier.append(nxt)
    return picked


def to_fp16(
    src: Path, out: Path, op_block_list: tuple[str, ...], node_block_list: list[str] | None = None
) -> None:
    """fp16 weights and compute, inputs and outputs kept in their exported types (so the same
    feeding code runs it); ``op_block_list`` (added to the converter's own list, which a list given
    would replace) and ``node_block_list`` stay fp32 behind casts."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    from edgekit.compress.ort_quant import save_onnx

    model = onnx.load(str(src))
    names = node_block_list if node_block_list is not None else []
    # constants are clamped to fp16's own limit, not the converter's default 1e4: the causal mask
    # stays fp16's most negative value, as PyTorch's fp16 masks are
    model = convert_float_to_float16(
        model,
        max_finite_val=FP16_MAX,
        keep_io_types=True,
        op_block_list=[*DEFAULT_OP_BLOCK_LIST, *op_block_list],
        node_block_list=names,
    )
    _drop_repeated_casts(model)
    _skip_fp16_round_trips(model, set(op_block_list), set(names))
    save_onnx(model, out)


def _drop_repeated_casts(model: Any) -> int:
    """The fp16 converter casts a tensor once per read by a kept node, every Cast writing the same
    name: an initializer shared by 60 Pow nodes, or rotary's ``Concat(x, x)``, makes an invalid
    graph. Keep the first of each."""
    produced: dict[str, Any] = {}
    keep, dropped = [], 0
    for node in model.graph.node:
        first = produced.get(node.output[0]) if node.output else None
        if (
            first is not None
            and node.op_type == first.op_type == "Cast"
            and list(node.input) == list(first.input)
        ):
            dropped += 1
            continue
        produced.update({out: node for out in node.output})
        keep.append(node)
    if dropped:
        del model.graph.node[:]
        model.graph.node.extend(keep)
    return dropped


def _skip_fp16_round_trips(model: Any, ops: set[str], nodes: set[str]) -> int:
    """Between two fp32-kept nodes the converter still goes fp32 -> fp16 -> fp32: RMSNorm's squares
    (up to ~1e9 on SmolLM2) become inf on the way from Pow to ReduceMean. Feed the fp32 value
    straight through wherever the producer is one of ours (``ops`` / ``nodes``: float outputs)."""
    producer = {out: node for node in model.graph.node for out in node.output}
    kept = {
        out for node in model.graph.node if node.op_type in ops or node.name in nodes for out in node.output
    }

    def to(node: Any) -> int:
        return next((a.i for a in node.attribute if a.name == "to"), -1)

    bypass: dict[str, str] = {}
    for node in model.graph.node:
        first = producer.get(node.input[0]) if node.op_type == "Cast" and to(node) == 1 else None
        if first is not None and first.op_type == "Cast" and to(first) == 10 and first.input[0] in kept:
            bypass[node.output[0]] = first.input[0]
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in bypass:
                node.input[i] = bypass[name]
    graph_outputs = {o.name for o in model.graph.output}
    while True:  # dropping a dead Cast can leave its own input Cast dead
        used = {name for node in model.graph.node for name in node.input} | graph_outputs
        live = [n for n in model.graph.node if not (n.op_type == "Cast" and n.output[0] not in used)]
        if len(live) == len(model.graph.node):
            return len(bypass)
        del model.graph.node[:]
        model.graph.node.extend(live)
