"""edgekit: make trained transformers small and fast on edge devices.

Importing edgekit is cheap: torch, ONNX Runtime, OpenVINO and TensorRT are imported only
by the stage or backend that needs them. The public functions are reached lazily:

    >>> import edgekit
    >>> edgekit.export_model(edgekit.ExportConfig(model="path/to/hf", out="out/m"))
"""

from __future__ import annotations

__version__ = "0.1.0"

_LAZY = {
    "ExportConfig": "edgekit.export.config:ExportConfig",
    "export_model": "edgekit.export.api:export_model",
    "BenchConfig": "edgekit.benchmarks.harness:BenchConfig",
    "bench": "edgekit.benchmarks.harness:bench",
    "load_session": "edgekit.runtimes:load_session",
    "list_backends": "edgekit.runtimes:list_backends",
    "EdgekitError": "edgekit.errors:EdgekitError",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'edgekit' has no attribute {name!r}")
    import importlib

    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value
