"""TensorRT backend: runs the engine that ``edgekit build`` (or ``export --target trt`` on a GPU
machine) wrote, on the GPU, with PyTorch CUDA tensors as the device buffers.

Not run on the development machine (no TensorRT, no GPU); type-checked against ``tensorrt-stubs``
in the tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from edgekit.errors import InputError
from edgekit.runtimes.base import SessionBase, SessionOptions, TensorSpec, check_inputs

_NUMPY = {
    "FLOAT": "float32",
    "HALF": "float16",
    "INT64": "int64",
    "INT32": "int32",
    "INT8": "int8",
    "BOOL": "bool",
    "UINT8": "uint8",
}


ENGINE_FILE = "model.engine"


def tensorrt_status() -> tuple[bool, str]:
    """Whether an engine can be built here, and why not. ``tensorrt-stubs`` installs a stub-only
    ``tensorrt`` namespace package, so importing is not enough: the Builder must exist, and a GPU."""
    try:
        import tensorrt as trt
    except ImportError:
        return (
            False,
            "TensorRT is not installed (pip install tensorrt on a machine with an NVIDIA GPU, or use JetPack)",
        )
    if not hasattr(trt, "Builder"):
        return False, "only TensorRT type stubs are installed here, not TensorRT"
    try:
        import torch

        if not torch.cuda.is_available():
            return False, "TensorRT is installed but no CUDA GPU is visible"
    except ImportError:
        pass
    return True, f"TensorRT {trt.__version__}"


class TrtSession(SessionBase):
    backend = "trt"

    def __init__(self, engine_path: Path, options: SessionOptions = SessionOptions()):
        import tensorrt as trt
        import torch

        self.engine_path = Path(engine_path)
        if not self.engine_path.is_file():
            raise InputError(
                f"TensorRT engine '{self.engine_path}' does not exist",
                "build it on the device with 'edgekit build DIR'",
            )
        self._torch = torch
        self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        engine = self._runtime.deserialize_cuda_engine(self.engine_path.read_bytes())
        if engine is None:
            raise InputError(
                f"TensorRT could not load '{self.engine_path}' (built for another TensorRT version or GPU?)",
                "rebuild it here with 'edgekit build DIR'",
            )
        self._engine = engine
        self._context = engine.create_execution_context()
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._dtypes = {n: _NUMPY.get(engine.get_tensor_dtype(n).name, "float32") for n in names}
        self._shapes = {n: _dims(engine.get_tensor_shape(n)) for n in names}
        self._ranges = _profile_ranges(engine, self._inputs)
        self._active = 0

    def input_specs(self) -> list[TensorSpec]:
        return [
            TensorSpec(n, tuple(d if d >= 0 else None for d in self._shapes[n]), self._dtypes[n])
            for n in self._inputs
        ]

    def output_specs(self) -> list[TensorSpec]:
        return [
            TensorSpec(n, tuple(d if d >= 0 else None for d in self._shapes[n]), self._dtypes[n])
            for n in self._outputs
        ]

    def run(self, inputs: Mapping[str, Any], output_names: list[str] | None = None) -> dict[str, Any]:
        import numpy as np

        torch = self._torch
        check_inputs(self, inputs)
        stream = torch.cuda.current_stream()
        arrays = {name: np.ascontiguousarray(inputs[name], dtype=self._dtypes[name]) for name in self._inputs}
        profile = self.profile_for({name: a.shape for name, a in arrays.items()})
        if profile != self._active:
            if not self._context.set_optimization_profile_async(profile, stream.cuda_stream):
                raise RuntimeError(f"TensorRT could not switch to optimization profile {profile}")
            self._active = profile
        keep = []
        for name, array in arrays.items():
            tensor = torch.from_numpy(array).cuda()
            keep.append(tensor)
            self._context.set_input_shape(name, tuple(array.shape))
            self._context.set_tensor_address(name, tensor.data_ptr())
        outputs = {}
        for name in self._outputs:
            shape = _dims(self._context.get_tensor_shape(name))
            tensor = torch.empty(shape, dtype=getattr(torch, self._dtypes[name]), device="cuda")
            outputs[name] = tensor
            self._context.set_tensor_address(name, tensor.data_ptr())
        if not self._context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed")
        stream.synchronize()
        wanted = output_names or self._outputs
        return {name: outputs[name].cpu().numpy() for name in wanted}

    def profile_for(self, shapes: Mapping[str, tuple[int, ...]]) -> int:
        """The first optimization profile whose min..max ranges hold every input shape."""
        return pick_profile(self._ranges, shapes)

    def model_bytes(self) -> int:
        return self.engine_path.stat().st_size


def _profile_ranges(
    engine: Any, inputs: list[str]
) -> list[dict[str, tuple[tuple[int, ...], tuple[int, ...]]]]:
    """Per optimization profile, the (min, max) shape of every input (a decoder's engine has two:
    decode, prefill)."""
    ranges = []
    for index in range(engine.num_optimization_profiles):
        profile = {}
        for name in inputs:
            low, _, high = engine.get_tensor_profile_shape(name, index)
            profile[name] = (_dims(low), _dims(high))
        ranges.append(profile)
    return ranges


def _shown(name: str) -> bool:
    """In messages, one cache tensor stands for all of them."""
    return not name.startswith("past_key_values.") or name == "past_key_values.0.key"


def pick_profile(
    ranges: list[dict[str, tuple[tuple[int, ...], tuple[int, ...]]]], shapes: Mapping[str, tuple[int, ...]]
) -> int:
    """Index of the first profile (per input: min and max shape) that holds ``shapes``; a clear error
    when none does (a prompt or batch past what the engine was built for)."""
    for index, profile in enumerate(ranges):
        if all(
            len(shapes[n]) == len(lo) and all(a <= d <= b for d, a, b in zip(shapes[n], lo, hi))
            for n, (lo, hi) in profile.items()
        ):
            return index
    limits = "; ".join(
        ", ".join(f"{n} {list(lo)}..{list(hi)}" for n, (lo, hi) in profile.items() if _shown(n))
        for profile in ranges
    )
    given = ", ".join(f"{n} {list(s)}" for n, s in shapes.items() if _shown(n))
    raise InputError(
        f"input shapes ({given}) fit none of the engine's optimization profiles ({limits})",
        "re-export with a larger --max-batch or --max-seq-len and rebuild the engine",
    )


def _dims(dims: Any) -> tuple[int, ...]:
    return tuple(int(dims[i]) for i in range(len(dims)))


class TrtBackend:
    name = "trt"

    @classmethod
    def load(
        cls,
        artifact: Path,
        manifest: Mapping[str, Any],
        options: SessionOptions,
        model_file: str | None = None,
    ) -> TrtSession:
        ok, why = tensorrt_status()
        if not ok:
            raise InputError(
                f"the TensorRT backend cannot run here: {why}", "run it on the device with TensorRT and a GPU"
            )
        return TrtSession(engine_path(Path(artifact), model_file), options)


def engine_path(artifact: Path, model_file: str | None = None) -> Path:
    """Where the engine of a graph lies: ``model.engine`` beside its ONNX, in the artifact or in a
    tower's folder (``text/model.onnx`` -> ``text/model.engine``). Graphs that share one folder
    (an encoder-decoder's, other than --target trt's ``encoder/`` and ``decoder/``) have no engine
    of their own."""
    if model_file is None:
        return artifact / ENGINE_FILE
    parent = Path(model_file).parent
    if parent == Path("."):
        raise InputError(
            "this artifact's graphs share one folder, so none has a TensorRT engine of its own",
            "export it with --target trt",
        )
    return artifact / parent / ENGINE_FILE
