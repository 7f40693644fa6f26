"""Weight-only INT8 / INT4 for KV-cache decoders: decode is memory-bound, so reading 1 or 0.5 byte
per weight instead of 4 is where the speed comes from; activations stay float.

ONNX Runtime: every weight MatMul becomes ``com.microsoft.MatMulNBits`` (per block of ``block_size``
input channels; int8 symmetric, int4 with a zero point per block) with ``accuracy_level`` 4, which lets the CPU kernel compute in int8
(activations quantized per block on the fly). A tied LM head reads the embedding table through a
Transpose; that weight is materialised first so the head -- about a fifth of SmolLM2's weights --
is quantized too.

OpenVINO: ``nncf.compress_weights`` (data-free), INT8 asymmetric per channel, or INT4 symmetric
in groups of ``block_size``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BITS = {"int8": 8, "int4": 4}
BLOCK_SIZE = 32
ACCURACY_LEVEL = 4


def materialize_transposed_weights(model: Any) -> int:
    """``MatMul(x, Transpose(W_init))`` -> ``MatMul(x, W_init^T)`` with a new initializer."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    produced_by = {o: n for n in model.graph.node for o in n.output}
    count = 0
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        producer = produced_by.get(node.input[1])
        if producer is None or producer.op_type != "Transpose" or producer.input[0] not in inits:
            continue
        perm = next((list(a.ints) for a in producer.attribute if a.name == "perm"), None)
        if perm not in (None, [1, 0]) or len(inits[producer.input[0]].dims) != 2:
            continue
        name = f"{producer.input[0]}_transposed_for_{node.name}"
        model.graph.initializer.append(
            numpy_helper.from_array(numpy_helper.to_array(inits[producer.input[0]]).T.copy(), name)
        )
        node.input[1] = name
        count += 1
    return count


def ort_weight_only(
    src: Path, out: Path, precision: str, block_size: int = BLOCK_SIZE, accuracy_level: int = ACCURACY_LEVEL
) -> dict:
    import logging

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    from edgekit.compress.onnx_edit import drop_unused_initializers, save_with_external_data

    logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer").setLevel(
        logging.WARNING
    )  # it logs every node at INFO
    model = onnx.load(str(src))
    materialized = materialize_transposed_weights(model)
    # int4 keeps a zero point per block (asymmetric): on SmolLM2 symmetric int4 lost the first greedy
    # token on all 4 test prompts, asymmetric kept 5/2/0/1 tokens at the same speed; int8 stays symmetric
    symmetric = precision != "int4"
    quantizer = MatMulNBitsQuantizer(
        model,
        bits=BITS[precision],
        block_size=block_size,
        is_symmetric=symmetric,
        accuracy_level=accuracy_level,
    )
    quantizer.process()
    quantized = quantizer.model.model
    drop_unused_initializers(quantized)
    save_with_external_data(quantized, out)
    ops = [n.op_type for n in quantized.graph.node]
    return {
        "mode": "weight-only",
        "weights": f"int{BITS[precision]} {'symmetric' if symmetric else 'asymmetric (a zero point per block)'}, blocks of {block_size} input channels",
        "op": "com.microsoft.MatMulNBits",
        "accuracy_level": accuracy_level,
        "quantized_matmuls": ops.count("MatMulNBits"),
        "float_matmuls": ops.count("MatMul"),
        "materialized_transposed_weights": materialized,
    }


OPENVINO_GROUP_SIZES = (128, 64, 32)
"""INT4 group sizes tried in turn: the largest that divides every weight's input width (SmolLM2's 576 takes 64)."""


def openvino_weight_only(model: Any, precision: str) -> tuple[Any, dict]:
    import nncf

    if precision == "int8":
        mode = nncf.CompressWeightsMode.INT8_ASYM
        return nncf.compress_weights(model, mode=mode), {
            "mode": "weight-only",
            "tool": f"nncf {nncf.__version__}",
            "compression": mode.value,
        }
    mode = nncf.CompressWeightsMode.INT4_SYM
    for group_size in OPENVINO_GROUP_SIZES:
        try:
            compressed = nncf.compress_weights(model.clone(), mode=mode, group_size=group_size, ratio=1.0)
        except nncf.errors.InvalidGroupSizeError:
            continue
        return compressed, {
            "mode": "weight-only",
            "tool": f"nncf {nncf.__version__}",
            "compression": mode.value,
            "group_size": group_size,
            "ratio": 1.0,
        }
    raise nncf.errors.InvalidGroupSizeError(
        f"no INT4 group size in {OPENVINO_GROUP_SIZES} divides the model's weight widths"
    )
