"""ONNX Runtime backend (CPU execution provider)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgekit.errors import InputError
from edgekit.runtimes.base import SessionBase, SessionOptions, TensorSpec, check_inputs, unreadable_model

# ONNX Runtime's SkipLayerNormalization CPU kernel took 30 ms of a 280 ms MiniLM run (batch 8,
# 1 thread) where the unfused Add + LayerNormalization it replaces took 4-14 ms: leaving the
# fusion off made the whole run ~10% faster on this CPU (measured in two interleaved runs).
CPU_DISABLED_OPTIMIZERS = ("SkipLayerNormFusion",)

_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
}


def _specs(values) -> list[TensorSpec]:
    return [
        TensorSpec(
            v.name,
            tuple(d if isinstance(d, (int, str)) else None for d in v.shape),
            _ORT_TYPES.get(v.type, v.type),
        )
        for v in values
    ]


class OrtSession(SessionBase):
    backend = "ort"
    keeps_values = True

    def __init__(self, model_path: Path, options: SessionOptions = SessionOptions()):
        import onnxruntime as ort

        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise InputError(f"ONNX model '{self.model_path}' does not exist", "re-run 'edgekit export'")
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if options.threads:
            so.intra_op_num_threads = options.threads
        so.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(self.model_path),
                so,
                providers=["CPUExecutionProvider"],
                disabled_optimizers=list(CPU_DISABLED_OPTIMIZERS),
            )
        except Exception as exc:
            if type(exc).__name__ in ("InvalidProtobuf", "InvalidGraph"):  # the file, not the runtime
                raise unreadable_model(self.model_path, "ONNX Runtime", exc) from exc
            raise
        self._inputs = _specs(self._session.get_inputs())
        self._outputs = _specs(self._session.get_outputs())

    def input_specs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def output_specs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def run(self, inputs: Mapping[str, Any], output_names: list[str] | None = None) -> dict[str, Any]:
        check_inputs(self, inputs)
        names = output_names or [s.name for s in self._outputs]
        values = self._session.run(names, dict(inputs))
        return dict(zip(names, values))

    def run_keep(
        self, inputs: Mapping[str, Any], fetch: list[str], keep: list[str]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run with IO binding: ``fetch`` outputs come back as numpy arrays, ``keep`` outputs stay
        ONNX Runtime values that can be fed straight back as inputs (a KV cache: no copy out and
        back in each step). Inputs may be numpy arrays or such kept values."""
        import onnxruntime as ort

        check_inputs(self, inputs)
        binding = self._session.io_binding()
        for name, value in inputs.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, np.ascontiguousarray(value))
        names = list(fetch) + list(keep)
        for name in names:
            binding.bind_output(name, "cpu")
        self._session.run_with_iobinding(binding)
        values = dict(zip(names, binding.get_outputs()))
        return {n: values[n].numpy() for n in fetch}, {n: values[n] for n in keep}

    def static_cache(self, pairs: dict[str, str], shape: tuple[int, ...]) -> "StaticCache":
        """Cache buffers of ``shape`` (zeros), each bound as the past input and the present output of
        a pair: GroupQueryAttention then writes each step's keys and values in place."""
        return StaticCache(self._session, pairs, shape)

    def model_bytes(self) -> int:
        """The graph file plus its external-data file, if the exporter wrote one beside it."""
        data = [self.model_path.with_name(self.model_path.name + suffix) for suffix in (".data", "_data")]
        return self.model_path.stat().st_size + sum(p.stat().st_size for p in data if p.is_file())


class OrtBackend:
    name = "ort"

    @classmethod
    def load(
        cls,
        artifact: Path,
        manifest: Mapping[str, Any],
        options: SessionOptions,
        model_file: str | None = None,
    ) -> OrtSession:
        model_file = model_file or manifest.get("export", {}).get("model_file")
        if not model_file or not model_file.endswith((".onnx", ".ort")):
            raise InputError(
                f"artifact '{artifact}' holds no ONNX model", "export it with 'edgekit export --target onnx'"
            )
        return OrtSession(Path(artifact) / model_file, options)


class StaticCache:
    """A decoder's KV cache allocated once at full length and bound as both past and present: no
    growing copy of the cache and no new values to allocate and free at each step. Only the
    inputs that change are bound per run; the fetched output goes to a buffer of its own that is
    bound again only when its shape changes (the prefill, then one token a step), so a step makes
    no output values to wrap (reading them all back cost ~0.1 ms a step, 61 values on SmolLM2)."""

    def __init__(self, session: Any, pairs: dict[str, str], shape: tuple[int, ...]):
        import onnxruntime as ort

        self._session = session
        self._binding = session.io_binding()
        self.buffers = {p: ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, np.float32)) for p in pairs}
        for past, present in pairs.items():
            self._binding.bind_ortvalue_input(past, self.buffers[past])
            self._binding.bind_ortvalue_output(present, self.buffers[past])
        self._last = {o.name: o.shape[-1] for o in session.get_outputs()}  # the fetched output's last axis
        self._out: tuple[tuple, np.ndarray, Any] | None = None  # (fetch and shape, buffer, its bound value)

    def run(self, inputs: Mapping[str, Any], fetch: str) -> np.ndarray:
        """``fetch`` ([rows, new tokens, last axis]) for this step, in a buffer the next run overwrites."""
        for name, value in inputs.items():
            self._binding.bind_cpu_input(name, np.ascontiguousarray(value))
        shape = (*np.shape(inputs["input_ids"]), self._last[fetch])
        if not isinstance(shape[-1], int):  # a dynamic last axis: ONNX Runtime allocates the output
            self._binding.bind_output(fetch, "cpu")
            self._session.run_with_iobinding(self._binding)
            return self._binding.get_outputs()[-1].numpy()
        if self._out is None or self._out[0] != (fetch, shape):  # the prefill, then the first step
            import onnxruntime as ort

            buffer = np.empty(shape, np.float32)
            value = ort.OrtValue.ortvalue_from_numpy(buffer)
            self._binding.bind_ortvalue_output(fetch, value)
            self._out = ((fetch, shape), buffer, value)
        self._session.run_with_iobinding(self._binding)
        return self._out[1]

    def arrays(self, length: int) -> dict[str, np.ndarray]:
        """The first ``length`` positions of each buffer, as plain arrays (a growing cache again)."""
        return {name: np.ascontiguousarray(v.numpy()[:, :, :length]) for name, v in self.buffers.items()}
