"""Backend registry: a name maps to "module:Class" and to the pip extra that provides it.

Nothing heavy is imported until a backend is asked for.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import InputError, MissingExtraError, did_you_mean
from edgekit.runtimes.base import Session, SessionOptions


@dataclass(frozen=True)
class BackendEntry:
    name: str
    target: str
    """``module:Class`` implementing the Backend protocol."""
    extra: str
    """The pip extra that installs what it needs: ``pip install 'edgekit[<extra>]'``."""
    requires: tuple[str, ...]
    """Top-level modules that must be importable."""
    description: str
    formats: tuple[str, ...] = ()
    """Artifact formats it runs (manifest ``export.format``); empty = any (the torch reference runs the source)."""
    needs_engine: bool = False
    """Runs only artifacts whose TensorRT engine was built (``export.tensorrt.engine_built``)."""
    probe: str | None = None
    """``module:function`` returning (usable, why not), for backends that an import alone does not
    prove usable (TensorRT: its type stubs import, and it needs a GPU)."""

    def reads(self, manifest) -> bool:
        export = manifest.get("export", {})
        if self.needs_engine and not export.get("tensorrt", {}).get("engine_built"):
            return False
        return not self.formats or export.get("format", "onnx") in self.formats

    def available(self) -> bool:
        return not self.missing()

    def missing(self) -> list[str]:
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if not missing and self.probe:
            module_name, fn = self.probe.split(":")
            ok, why = getattr(importlib.import_module(module_name), fn)()
            return [] if ok else [f"{self.requires[0]} ({why})"]
        return missing


_BACKENDS: dict[str, BackendEntry] = {
    entry.name: entry
    for entry in (
        BackendEntry(
            "torch",
            "edgekit.runtimes.torch_backend:TorchBackend",
            "torch",
            ("torch", "transformers"),
            "PyTorch eager fp32, the reference (runs the source model)",
        ),
        BackendEntry(
            "ort",
            "edgekit.runtimes.ort_backend:OrtBackend",
            "ort",
            ("onnxruntime",),
            "ONNX Runtime, CPU execution provider (ONNX graphs, and the .ort of android artifacts)",
            ("onnx", "android"),
        ),
        BackendEntry(
            "openvino",
            "edgekit.runtimes.openvino_backend:OpenVINOBackend",
            "openvino",
            ("openvino",),
            "OpenVINO, CPU (f32 unless the artifact says otherwise)",
            ("openvino-ir",),
        ),
        BackendEntry(
            "trt",
            "edgekit.runtimes.trt_backend:TrtBackend",
            "trt",
            ("tensorrt", "torch"),
            "TensorRT engine on an NVIDIA GPU or Jetson (built by 'edgekit build')",
            ("onnx",),
            needs_engine=True,
            probe="edgekit.runtimes.trt_backend:tensorrt_status",
        ),
        BackendEntry(
            "executorch",
            "edgekit.runtimes.executorch_backend:ExecuTorchBackend",
            "android",
            ("executorch", "torch"),
            "ExecuTorch with the XNNPACK delegate, on this CPU (the .pte of android artifacts)",
            ("android",),
        ),
    )
}


def list_backends() -> list[BackendEntry]:
    return list(_BACKENDS.values())


def get_backend_entry(name: str) -> BackendEntry:
    entry = _BACKENDS.get(name)
    if entry is None:
        raise InputError(f"unknown backend '{name}'", did_you_mean(name, _BACKENDS))
    return entry


def get_backend(name: str):
    entry = get_backend_entry(name)
    missing = entry.missing()
    if missing:
        raise MissingExtraError(f"the '{name}' backend", missing[0], entry.extra)
    module_name, cls_name = entry.target.split(":")
    return getattr(importlib.import_module(module_name), cls_name)


def default_backend(manifest) -> str:
    """The runtime an artifact was made for: the first backend that reads its format."""
    fmt = manifest.get("export", {}).get("format", "onnx")
    for entry in _BACKENDS.values():
        if entry.formats and fmt in entry.formats:
            return entry.name
    raise InputError(f"no backend reads artifacts of format '{fmt}'", "re-export with --target onnx")


def load_session(
    artifact: Path | str, backend: str = "auto", threads: int | None = None, model_file: str | None = None
) -> Session:
    """Open an artifact folder with the named backend (``auto``: the one its format is for).

    Encoder-decoder artifacts hold two graphs: name one with ``model_file`` (``runtimes/seq2seq.py``
    opens both)."""
    from edgekit.artifacts import read_manifest

    artifact = Path(artifact)
    manifest = read_manifest(artifact)
    if backend == "auto":
        backend = default_backend(manifest)
    entry = get_backend_entry(backend)
    if not entry.reads(manifest):
        export = manifest.get("export", {})
        if entry.needs_engine and "tensorrt" in export:
            raise InputError(
                f"'{artifact}' holds no TensorRT engine yet",
                f"run 'edgekit build {artifact}' on the device with TensorRT and a GPU, or use --backend {default_backend(manifest)}",
            )
        raise InputError(
            f"backend '{backend}' cannot run '{artifact}' ({export.get('format', 'onnx')})",
            f"use --backend {default_backend(manifest)}",
        )
    files = manifest.get("export", {}).get("model_files")
    if files and model_file is None:
        if set(files) == {"text", "vision"}:
            raise InputError(
                f"'{artifact}' is an image-text model: it holds text and vision graphs",
                "use 'edgekit zero-shot', or edgekit.runtimes.dual.ZeroShot in Python",
            )
        raise InputError(
            f"'{artifact}' is an encoder-decoder: it holds {' and '.join(sorted(files))} graphs",
            "use 'edgekit generate', or edgekit.runtimes.seq2seq.open_seq2seq in Python",
        )
    if model_file is not None:
        return get_backend(backend).load(
            artifact, manifest, SessionOptions(threads=threads), model_file=model_file
        )
    return get_backend(backend).load(artifact, manifest, SessionOptions(threads=threads))
