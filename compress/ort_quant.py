"""INT8 for ONNX graphs: static Q/DQ from edgekit's shared ranges, and dynamic quantization.

What gets quantized by default: the MatMul/Gemm nodes that multiply by a weight (an initializer)
-- where nearly all the FLOPs of a transformer are. Their activation input gets one per-tensor
Q/DQ pair (uint8 asymmetric for ONNX Runtime's u8s8 kernels on x86, or int8 symmetric where the
target needs it, as TensorRT does), the weight int8 symmetric per output channel, and the output
stays float, so ONNX Runtime fuses DQ + DQ + MatMul into MatMulIntegerToFloat rather than
re-quantizing after every product. Attention score products, softmax, LayerNorm and GELU stay
float: quantizing them costs most of the accuracy for little speed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("edgekit.compress")

QUANT_OPS = ("MatMul", "Gemm")


@dataclass(frozen=True)
class QuantTarget:
    """The nodes to quantize and the float activation tensors that need a range."""

    nodes: list[str]
    activations: list[str]


def load_with_shapes(path: Path):
    import onnx

    model = onnx.load(str(path))
    try:
        return onnx.shape_inference.infer_shapes(model)
    except Exception as exc:  # noqa: BLE001 - shape inference is an aid; quantization works without it
        log.debug("onnx shape inference failed (%s); quantizing without inferred shapes", exc)
        return model


def weight_matmuls(model: Any, exclude: tuple[str, ...] = ()) -> QuantTarget:
    """MatMul/Gemm nodes with a 2-D initializer operand (the weight), minus ``exclude``."""
    inits = {i.name: i for i in model.graph.initializer}
    nodes, acts = [], []
    for node in model.graph.node:
        if node.op_type not in QUANT_OPS or node.name in exclude:
            continue
        weights = [i for i in node.input[:2] if i in inits and len(inits[i].dims) == 2]
        if len(weights) != 1:
            continue
        nodes.append(node.name)
        act = next(i for i in node.input[:2] if i not in inits)
        if act not in acts:
            acts.append(act)
    return QuantTarget(nodes, acts)


def with_convs(model: Any, target: QuantTarget) -> QuantTarget:
    """``target`` plus every Conv with an initializer weight: its input and its output get a range,
    as ONNX Runtime fuses ``DQ -> Conv -> Q`` into QLinearConv (there is no int8 convolution with a
    float output). For speech feature encoders, whose convolutions over raw audio hold about a
    third of wav2vec2-base's multiply-adds."""
    inits = {i.name for i in model.graph.initializer}
    nodes, acts = list(target.nodes), list(target.activations)
    for node in model.graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        nodes.append(node.name)
        acts += [t for t in (node.input[0], node.output[0]) if t not in acts]
    return QuantTarget(nodes, acts)


def quantize_static_qdq(
    model: Any,
    out: Path,
    ranges: dict[str, tuple[float, float]],
    nodes: list[str],
    symmetric_activations: bool = False,
    per_channel: bool = True,
    fuse: bool = False,
) -> None:
    """Insert Q/DQ for ``nodes`` using the given activation ranges and save to ``out``
    (``fuse``: in ONNX Runtime's fused form, see ``fuse_matmul_bias``)."""
    import numpy as np

    if not nodes:  # ONNX Runtime reads an empty list as "every node", activation MatMuls included
        raise ValueError("quantize_static_qdq needs at least one node to quantize")
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

    data = TensorsData(
        CalibrationMethod.MinMax,
        {name: (np.float32(lo), np.float32(hi)) for name, (lo, hi) in ranges.items()},
    )
    convs = {n.name for n in model.graph.node if n.op_type == "Conv"} & set(nodes)
    quantizer = QDQQuantizer(
        model,
        per_channel,
        False,  # reduce_range: not needed on VNNI / AVX512 CPUs
        QuantType.QInt8,
        QuantType.QInt8 if symmetric_activations else QuantType.QUInt8,
        data,
        nodes,
        [],
        [*QUANT_OPS, "Conv"],
        {
            "OpTypesToExcludeOutputQuantization": list(QUANT_OPS),
            "ActivationSymmetric": symmetric_activations,
            "WeightSymmetric": True,
            # a Conv's bias as int32 (QLinearConv's form); MatMul biases are Adds, fused below
            "QuantizeBias": bool(convs),
        },
    )
    quantizer.quantize_model()
    model = quantizer.model.model
    keep_float_consumers(model, set(nodes))
    if fuse:
        fuse_matmul_bias(model)
    save_onnx(model, out)


def keep_float_consumers(model: Any, quantized: set[str]) -> int:
    """Give back the float tensor to every consumer of a dequantized activation that is not itself
    quantized. ONNX Runtime's quantizer routes *all* consumers through the Q/DQ pair, so the
    residual Add after a LayerNorm would carry the INT8 rounding error down the whole network."""
    produced_by = {out: n for n in model.graph.node for out in n.output}
    rewired = 0
    for node in model.graph.node:
        if node.name in quantized or node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        for i, name in enumerate(node.input):
            dq = produced_by.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            q = produced_by.get(dq.input[0])
            source = produced_by.get(q.input[0]) if q is not None else None
            if source is not None and source.op_type == "Conv" and source.name in quantized:
                continue  # a quantized Conv's own output Q: what makes it a QLinearConv
            if q is not None and q.op_type == "QuantizeLinear":
                node.input[i] = q.input[0]
                rewired += 1
    return rewired


def fuse_matmul_bias(model: Any) -> int:
    """ONNX Runtime form of a Q/DQ graph: ``DQ(x_q), DQ(W_q) -> MatMul -> Add(bias)`` becomes one
    ``com.microsoft.MatMulIntegerToFloat(x_q, W_q, scales, zero points, bias)``. Same arithmetic;
    ONNX Runtime's own Q/DQ fusion stops before the bias Add, and folding it in cut MiniLM's
    batch-8 latency by ~10% on this CPU. The activation QuantizeLinear nodes stay as they are."""
    from onnx import helper

    from edgekit.compress.onnx_edit import use_contrib_domain

    graph = model.graph
    produced_by = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    inits = {i.name for i in graph.initializer}
    replaced: dict[int, Any] = {}
    dropped: set[int] = set()
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        dq_a, dq_b = (produced_by.get(i) for i in node.input[:2])
        if not (
            dq_a is not None
            and dq_b is not None
            and dq_a.op_type == dq_b.op_type == "DequantizeLinear"
            and dq_b.input[0] in inits
        ):
            continue
        out, bias = node.output[0], ""
        users = consumers.get(node.output[0], [])
        if len(users) == 1 and users[0].op_type == "Add":
            bias = next((i for i in users[0].input if i in inits), "")
            if bias:
                out = users[0].output[0]
                dropped.add(id(users[0]))
        inputs = [
            dq_a.input[0],
            dq_b.input[0],
            dq_a.input[1],
            dq_b.input[1],
            _at(dq_a.input, 2),
            _at(dq_b.input, 2),
            bias,
        ]
        while inputs[-1] == "":
            inputs.pop()
        replaced[id(node)] = helper.make_node(
            "MatMulIntegerToFloat", inputs, [out], name=f"{node.name}_int8", domain="com.microsoft"
        )
        dropped.add(id(dq_b))
    nodes = [replaced.get(id(n), n) for n in graph.node if id(n) not in dropped]
    used = {i for n in nodes for i in n.input} | {o.name for o in graph.output}
    nodes = [n for n in nodes if not (n.op_type == "DequantizeLinear" and n.output[0] not in used)]
    del graph.node[:]
    graph.node.extend(nodes)
    if replaced:
        use_contrib_domain(model)
    return len(replaced)


def _at(values: Any, index: int) -> str:
    return values[index] if len(values) > index else ""


def quantize_dynamic_int8(src: Path, out: Path, nodes: list[str], per_channel: bool = True) -> None:
    """Weights int8 (per channel); activations quantized at run time from their live range."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(out),
        weight_type=QuantType.QInt8,
        per_channel=per_channel,
        nodes_to_quantize=nodes,
        op_types_to_quantize=list(QUANT_OPS),
    )


def save_onnx(model: Any, out: Path) -> None:
    """Save, with the weights in ``<name>.data`` beside it when protobuf's 2 GB cap would be hit.
    ``model`` is fully in memory: a ``<name>.data`` left by the graph it replaces (a >2 GB fp32
    export converted in place to a smaller fp16 or INT8 one) is stale and is removed."""
    import onnx

    data = out.with_name(out.name + ".data")
    data.unlink(missing_ok=True)  # onnx would append to it
    if model.ByteSize() > 1_800_000_000:
        onnx.save(model, str(out), save_as_external_data=True, location=data.name)
    else:
        onnx.save(model, str(out))


def qdq_summary(path: Path) -> dict:
    """What the quantized graph holds: Q/DQ counts, weight dtypes and per-channel axes."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = [n.op_type for n in model.graph.node]
    inits = {i.name: i for i in model.graph.initializer}
    int8_weights = sum(1 for i in inits.values() if i.data_type == onnx.TensorProto.INT8 and len(i.dims) == 2)
    return {
        "QuantizeLinear": ops.count("QuantizeLinear"),
        "DequantizeLinear": ops.count("DequantizeLinear"),
        "DynamicQuantizeLinear": ops.count("DynamicQuantizeLinear"),
        "MatMulInteger": ops.count("MatMulInteger"),
        "MatMulIntegerToFloat": ops.count("MatMulIntegerToFloat"),
        "int8_weight_tensors": int8_weights,
    }


def activation_qparams(low: float, high: float, symmetric: bool = False) -> tuple[float, int]:
    """Scale and zero point of a per-tensor range: uint8 asymmetric, or int8 symmetric."""
    low, high = min(low, 0.0), max(high, 0.0)
    if symmetric:
        absmax = max(-low, high)
        return (absmax / 127.0 if absmax > 0 else 1.0), 0
    scale = (high - low) / 255.0 if high > low else 1.0
    return scale, int(round(-low / scale))


def fake_quant_activation(x: Any, low: float, high: float, symmetric: bool = False) -> Any:
    """Quantize then dequantize ``x`` as the Q/DQ pair on an activation does."""
    import numpy as np

    scale, zero = activation_qparams(low, high, symmetric)
    qmin, qmax = (-127, 127) if symmetric else (0, 255)
    return ((np.clip(np.round(x / scale) + zero, qmin, qmax) - zero) * scale).astype(np.float32)


def fake_quant_weight(w: Any) -> Any:
    """Int8 symmetric per output channel (the last axis of a MatMul weight [K, N])."""
    import numpy as np

    scale = np.abs(w).max(axis=0, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    return (np.clip(np.round(w / scale), -127, 127) * scale).astype(np.float32)
