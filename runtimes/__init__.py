"""Runtimes: one Session interface over PyTorch (the reference), ONNX Runtime, and more to come."""

from edgekit.runtimes.base import Backend, Session, SessionOptions, TensorSpec
from edgekit.runtimes.registry import (
    BackendEntry,
    get_backend,
    get_backend_entry,
    list_backends,
    load_session,
)

__all__ = [
    "Backend",
    "BackendEntry",
    "Session",
    "SessionOptions",
    "TensorSpec",
    "get_backend",
    "get_backend_entry",
    "list_backends",
    "load_session",
]
