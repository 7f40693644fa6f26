"""ONNX Runtime backend (CPU execution provider)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from edgekit.errors import InputError
from edgekit.runtimes.base import SessionOptions, TensorSpec, check_inputs

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
        TensorSpec(v.name, tuple(d if isinstance(d, (int, str)) else None for d in v.shape), _ORT_TYPES.get(v.type, v.type))
        for v in values
    ]


class OrtSession:
    backend = "ort"

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
        self._session = ort.InferenceSession(str(self.model_path), so, providers=["CPUExecutionProvider"])
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

    def model_bytes(self) -> int:
        folder = self.model_path.parent
        stem = self.model_path.name
        return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and p.name.startswith(stem))


class OrtBackend:
    name = "ort"

    @classmethod
    def load(cls, artifact: Path, manifest: Mapping[str, Any], options: SessionOptions) -> OrtSession:
        model_file = manifest.get("export", {}).get("model_file")
        if not model_file:
            raise InputError(f"artifact '{artifact}' holds no ONNX model", "export it with 'edgekit export --target onnx'")
        return OrtSession(Path(artifact) / model_file, options)
