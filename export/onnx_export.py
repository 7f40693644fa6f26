"""torch module -> ONNX file. Tries the torch.export-based exporter first; the result is always validated."""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import EdgekitError, InputError

log = logging.getLogger("edgekit.export")

EXPORTERS = ("auto", "dynamo", "torchscript")
_EXTERNAL_DATA_BYTES = 1_800_000_000  # protobuf caps a single file at 2 GB


@dataclass(frozen=True)
class ConvertInfo:
    exporter: str
    opset: int
    fallback_reason: str | None = None


@contextlib.contextmanager
def _quiet():
    """The exporters print progress and warnings; keep them in the debug log instead of the terminal."""
    buf = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
        warnings.simplefilter("ignore")
        logging.getLogger("torch").setLevel(logging.ERROR)
        yield
    if buf.getvalue().strip():
        log.debug("exporter output:\n%s", buf.getvalue())


def _param_bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters())


def _export_dynamo(
    module, kwargs, input_names, output_names, axes, path: Path, opset: int, dynamic_shapes=None
) -> None:
    import torch

    if dynamic_shapes is None:
        dyn = torch.export.Dim.DYNAMIC
        dynamic_shapes = {name: {axis: dyn for axis in axes[name]} for name in input_names}
    program = torch.onnx.export(
        module,
        (),
        kwargs=kwargs,
        dynamo=True,
        input_names=input_names,
        output_names=output_names,
        dynamic_shapes=dynamic_shapes,
        opset_version=opset,
        external_data=_param_bytes(module) > _EXTERNAL_DATA_BYTES,
        optimize=True,
        verbose=False,
    )
    program.save(str(path), external_data=_param_bytes(module) > _EXTERNAL_DATA_BYTES)


def _export_torchscript(module, kwargs, input_names, output_names, axes, path: Path, opset: int) -> None:
    import torch

    args = tuple(kwargs[name] for name in input_names)
    # Tracing leaves transformers modules changed (later eager runs differ by ~1.0 on a tiny BERT):
    # trace a copy so the module stays a faithful reference for validation.
    module = copy.deepcopy(module)

    class Positional(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, *tensors):
            return self.inner(**dict(zip(input_names, tensors)))

    torch.onnx.export(
        Positional(module),
        args,
        str(path),
        dynamo=False,
        input_names=input_names,
        output_names=output_names,
        dynamic_axes={k: dict(v) for k, v in axes.items()},
        opset_version=opset,
        do_constant_folding=True,
    )


def name_dynamic_axes(path: Path, axes: dict[str, dict[int, str]]) -> None:
    """Give every dynamic axis of the graph's inputs and outputs its readable name (batch, sequence, ...)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for value in list(model.graph.input) + list(model.graph.output):
        for axis, label in axes.get(value.name, {}).items():
            dims = value.type.tensor_type.shape.dim
            if axis < len(dims):
                dims[axis].ClearField("dim_value")
                dims[axis].dim_param = label
    onnx.save(model, str(path))


def convert(
    module,
    kwargs: dict[str, Any],
    input_names,
    output_names,
    axes,
    path: Path,
    opset: int,
    exporter: str = "auto",
    dynamic_shapes=None,
) -> ConvertInfo:
    """Write ``module`` to ``path`` as ONNX; ``kwargs`` are example inputs (batch >= 2, sequence >= 2).

    ``dynamic_shapes`` (torch.export form) is needed when ``kwargs`` nest tensors (a KV cache);
    such modules have no TorchScript fallback.
    """
    import torch

    if exporter not in EXPORTERS:
        raise InputError(f"unknown exporter '{exporter}'", f"use one of {', '.join(EXPORTERS)}")
    if dynamic_shapes is not None and exporter == "torchscript":
        raise InputError(
            "the TorchScript exporter cannot export a KV-cache decoder correctly",
            "use --exporter dynamo (the default)",
        )
    fallback_reason = None
    if exporter in ("auto", "dynamo"):
        try:
            with _quiet(), torch.no_grad():
                _export_dynamo(module, kwargs, input_names, output_names, axes, path, opset, dynamic_shapes)
            name_dynamic_axes(path, axes)
            return ConvertInfo("dynamo", opset)
        except Exception as exc:  # noqa: BLE001 - any exporter failure may be recoverable by the other exporter
            if exporter == "dynamo":
                raise EdgekitError(
                    f"torch.export-based ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0]}",
                    "retry with --exporter torchscript, or --verbose for details",
                ) from exc
            if dynamic_shapes is not None:
                raise EdgekitError(
                    f"torch.export-based ONNX export failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
                    "rerun with --verbose for details",
                ) from exc
            fallback_reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            log.warning(
                "dynamo export failed (%s); falling back to the TorchScript exporter", fallback_reason
            )
            for leftover in path.parent.glob(path.name + "*"):
                leftover.unlink()
    used_opset = min(opset, 18)  # the TorchScript exporter is not maintained past opset 18
    with _quiet(), torch.no_grad():
        _export_torchscript(module, kwargs, input_names, output_names, axes, path, used_opset)
    name_dynamic_axes(path, axes)
    return ConvertInfo("torchscript", used_opset, fallback_reason)
