"""ExecuTorch programs (``.pte``) with the XNNPACK delegate, made from the PyTorch module a kind
built: fp32, or INT8 with static activation ranges from a calibration set (PT2E, ExecuTorch's
XNNPACK quantizer: weights int8 symmetric per output channel, activations int8 per tensor).

Only the linear layers are quantized: the quantizer would otherwise also quantize the additions,
and the one that adds the attention mask (a large negative value at padded positions) then loses
every score to one step of its range. Shapes stay dynamic up to ``max_batch`` x ``max_seq``; the
program plans its memory for those bounds.
"""

from __future__ import annotations

import collections
import re
import time
from pathlib import Path
from typing import Any

from edgekit.runtimes.executorch_backend import quiet_executorch

quiet_executorch()

EXECUTORCH_RUNTIME = "executorch.runtime, XNNPACK delegate"


def positional(module: Any, names: list[str]) -> Any:
    """``module`` taking its inputs by position in ``names`` order (the program's input order)."""
    import torch

    class Positional(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, *args):
            return self.inner(**dict(zip(names, args)))

    return Positional().eval()


def _packed(module: Any, shapes: tuple) -> Any:
    """``shapes`` as torch.export wants them for ``module``: the Positional wrapper takes ``*args``
    (one argument holding them all), a quantized GraphModule its inputs one by one."""
    import torch

    return shapes if isinstance(module, torch.fx.GraphModule) else {"args": shapes}


def linear_name(node: Any) -> str:
    """The qualified name of the module an exported node came from (its innermost module)."""
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else ""


def quantize_linears(
    module: Any, example: tuple, shapes: tuple, feeds: list[tuple], keep: list[str] = ()
) -> Any:
    """The module with int8 linear layers (those named in ``keep`` stay float), their activation
    ranges observed on ``feeds``; a GraphModule that runs in PyTorch with int8 numerics."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    graph = torch.export.export(module, example, dynamic_shapes=_packed(module, shapes)).module()
    quantizer = XNNPACKQuantizer().set_operator_type(
        torch.ops.aten.linear.default, get_symmetric_quantization_config(is_per_channel=True)
    )
    kept = set(keep)
    if kept:
        quantizer.set_filter_function(lambda node: linear_name(node) not in kept)
    graph = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for feed in feeds:
            graph(*feed)
    return convert_pt2e(graph)


def output_outliers(module: Any, feeds: list[tuple]) -> list[str]:
    """Linear layers, the ones whose outputs a per-tensor int8 range fits worst first: ranked by
    max |y| / rms(y) over ``feeds`` (a layer that writes into a transformer's residual stream has a
    few channels far larger than the rest, and one range for all of them rounds the rest away)."""
    import torch

    peaks: dict[str, list[float]] = {}
    hooks = []
    for name, sub in module.named_modules():
        if isinstance(sub, torch.nn.Linear):

            def hook(_mod, _inp, out, name=name):
                y = out.detach().float()
                peak, rms = float(y.abs().max()), float(y.pow(2).mean().sqrt())
                old = peaks.get(name, [0.0, 0.0])
                peaks[name] = [max(old[0], peak), max(old[1], rms)]

            hooks.append(sub.register_forward_hook(hook))
    try:
        with torch.no_grad():
            for feed in feeds:
                module(*feed)
    finally:
        for h in hooks:
            h.remove()
    return sorted(peaks, key=lambda n: -peaks[n][0] / max(peaks[n][1], 1e-12))


class GraphSession:
    """A PyTorch module taking its inputs by position, as a Session for the quality measure."""

    backend = "executorch (PyTorch with int8 numerics)"

    def __init__(self, module: Any, input_names: list[str], output_names: list[str]):
        self.module, self.input_names, self.output_names = module, input_names, output_names

    def run(self, inputs: dict, output_names: list[str] | None = None) -> dict:
        import numpy as np
        import torch

        with torch.no_grad():
            values = self.module(
                *[torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.input_names]
            )
        out = {n: v.numpy() for n, v in zip(self.output_names, values)}
        return {n: out[n] for n in (output_names or self.output_names)}


def write_pte(module: Any, example: tuple, shapes: tuple, path: Path) -> dict:
    """Export ``module``, delegate what XNNPACK takes, write the program to ``path``; returns what
    the manifest says about it (see ``lower``)."""
    import torch

    started = time.perf_counter()
    program = torch.export.export(module, example, dynamic_shapes=_packed(module, shapes))
    return lower(program, path, started)


def lower(
    program: Any,
    path: Path,
    started: float,
    constant_methods: dict | None = None,
    quantized_embedding: bool = False,
) -> dict:
    """Delegate what XNNPACK takes in the exported ``program`` and write it to ``path`` (with
    ``constant_methods``: values the program answers by name, as ExecuTorch's LLM runner reads
    them); returns the delegated partitions, the operators left to ExecuTorch's own kernels and
    the seconds taken since ``started``."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    edge = to_edge_transform_and_lower(
        program, partitioner=[XnnpackPartitioner()], constant_methods=constant_methods
    )
    config = None
    if quantized_embedding:
        from executorch.exir import ExecutorchBackendConfig

        # the int8 embedding (a dequantize before the lookup) becomes ExecuTorch's own
        # quantized_decomposed::embedding_byte kernel
        config = ExecutorchBackendConfig(do_quant_fusion_and_const_prop=True)
    program = edge.to_executorch(config)
    ops = collections.Counter(
        re.sub(r"(\.default|\.out|_out)$", "", getattr(node.target, "__name__", str(node.target)))
        for node in program.exported_program().graph.nodes
        if node.op == "call_function"
    )
    partitions = ops.pop("executorch_call_delegate", 0)
    for bookkeeping in ("getitem", "alloc", "executorch_prim::et_view", "sym_size.int"):
        ops.pop(bookkeeping, None)
    path.write_bytes(program.buffer)
    return {
        "delegate": "XnnpackBackend",
        "delegated_partitions": partitions,
        "portable_ops": dict(sorted(ops.items())),
        "lower_s": round(time.perf_counter() - started, 1),
    }
