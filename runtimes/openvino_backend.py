"""OpenVINO backend (CPU). Precision is explicit: f32 unless the artifact or the caller says otherwise
(on CPUs with AVX512-BF16 OpenVINO would otherwise run in bf16).

A decoder IR is stateful: the KV cache lives inside the compiled model between steps
(ReadValue/Assign pairs), so a step feeds only the new tokens and reads only the logits.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgekit.errors import InputError
from edgekit.runtimes.base import SessionBase, SessionOptions, TensorSpec, check_inputs, unreadable_model

_OV_TYPES = {
    "f32": "float32",
    "f16": "float16",
    "i64": "int64",
    "i32": "int32",
    "u8": "uint8",
    "i8": "int8",
    "boolean": "bool",
}


_GENERATED_NAME = re.compile(
    r"^[A-Za-z]+(_[A-Za-z]+)*_\d+$"
)  # e.g. linear_16, val_123: names the exporter made up


def _port_name(port) -> str:
    """The graph's own name for a port: a compiled model may also carry the producing node's name."""
    names = sorted(n for n in port.get_names() if not _GENERATED_NAME.match(n))
    return names[0] if names else port.get_any_name()


def _specs(ports) -> list[TensorSpec]:
    specs = []
    for port in ports:
        shape = tuple(int(d.get_length()) if d.is_static else None for d in port.get_partial_shape())
        specs.append(
            TensorSpec(
                _port_name(port),
                shape,
                _OV_TYPES.get(
                    port.get_element_type().get_type_name(), port.get_element_type().get_type_name()
                ),
            )
        )
    return specs


class OpenVINOSession(SessionBase):
    backend = "openvino"

    def __init__(
        self,
        xml_path: Path,
        options: SessionOptions = SessionOptions(),
        precision: str = "f32",
        cache: Mapping[str, Any] | None = None,
        kv_cache_precision: str = "f32",
    ):
        import openvino as ov

        self.xml_path = Path(xml_path)
        if not self.xml_path.is_file():
            raise InputError(
                f"OpenVINO IR '{self.xml_path}' does not exist", "re-run 'edgekit export --target openvino'"
            )
        # The CPU plugin stores a fused KV cache as u8 by default (lossy: greedy tokens drift from
        # PyTorch's within a few steps); f32 keeps decoding exact and is the default here.
        config = {
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
            "NUM_STREAMS": "1",
            "KV_CACHE_PRECISION": kv_cache_precision,
        }
        if options.threads:
            config["INFERENCE_NUM_THREADS"] = str(options.threads)
        core = ov.Core()
        try:
            self._compiled = core.compile_model(str(self.xml_path), "CPU", config)
        except RuntimeError as exc:
            if "frontend" in str(exc) or "parse" in str(exc).lower():  # the IR files, not the device
                raise unreadable_model(self.xml_path, "OpenVINO", exc) from exc
            raise
        self._request = self._compiled.create_infer_request()
        hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)  # "f32"
        inputs = _specs(self._compiled.inputs)
        self._beam_input = any(spec.name == "beam_idx" for spec in inputs)
        """A decoder IR from export/openvino_ir.py:torch_decoder_to_ir: the cache rows are picked by a
        ``beam_idx`` input (fed here, not by callers) and start empty at the batch of ``input_ids``."""
        self._next_rows: np.ndarray | None = None
        self._inputs = [spec for spec in inputs if spec.name != "beam_idx"]
        self._outputs = _specs(self._compiled.outputs)
        self._cache = dict(cache) if cache else None
        self.stateful = bool(self._request.query_state())

    def input_specs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def output_specs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def reset(self, batch: int = 1) -> None:
        """Start a new sequence: empty KV cache for ``batch`` rows."""
        import openvino as ov

        if not self.stateful:
            return
        self._request.reset_state()
        self._next_rows = None
        if self._beam_input or self._cache is None:
            return
        empty = np.zeros((batch, self._cache["kv_heads"], 0, self._cache["head_dim"]), dtype=np.float32)
        for state in self._request.query_state():
            state.state = ov.Tensor(empty)

    def select_rows(self, rows) -> None:
        """Reorder (or repeat) the batch rows of the KV cache kept inside: beam search."""
        import openvino as ov

        if self._beam_input:  # gathered inside the model on the next step, without copying the cache out
            self._next_rows = np.asarray(rows, dtype=np.int32)
            return
        for state in self._request.query_state():
            state.state = ov.Tensor(np.ascontiguousarray(state.state.data[np.asarray(rows)]))

    def run(self, inputs: Mapping[str, Any], output_names: list[str] | None = None) -> dict[str, Any]:
        check_inputs(self, inputs)
        feeds = dict(inputs)
        if self._beam_input:
            rows = (
                self._next_rows
                if self._next_rows is not None
                else np.arange(np.asarray(inputs["input_ids"]).shape[0], dtype=np.int32)
            )
            feeds["beam_idx"], self._next_rows = rows, None
        self._request.infer(
            feeds, share_inputs=True
        )  # no copy of the inputs (an encoder-decoder feeds its cross-attention cache each step)
        names = output_names or [s.name for s in self._outputs]
        return {name: np.array(self._request.get_tensor(name).data, copy=True) for name in names}

    def model_bytes(self) -> int:
        return self.xml_path.stat().st_size + self.xml_path.with_suffix(".bin").stat().st_size


class OpenVINOBackend:
    name = "openvino"

    @classmethod
    def load(
        cls,
        artifact: Path,
        manifest: Mapping[str, Any],
        options: SessionOptions,
        model_file: str | None = None,
    ) -> OpenVINOSession:
        export = manifest.get("export", {})
        model_file = model_file or export.get("model_file", "")
        if not model_file.endswith(".xml"):
            raise InputError(
                f"artifact '{artifact}' holds no OpenVINO IR",
                "export it with 'edgekit export --target openvino'",
            )
        return OpenVINOSession(
            Path(artifact) / model_file,
            options,
            export.get("inference_precision", "f32"),
            export.get("cache"),
            export.get("kv_cache_precision", "f32"),
        )
