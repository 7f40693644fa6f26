"""One session interface over every runtime: run named numpy inputs, get named numpy outputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, runtime_checkable

from edgekit.errors import InputError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str | None, ...]
    """Fixed sizes as ints, dynamic axes by name (``"batch"``) or None."""
    dtype: str
    """numpy dtype name, e.g. ``"int64"``, ``"float32"``."""


@dataclass(frozen=True)
class SessionOptions:
    threads: int | None = None
    """Intra-op threads; None lets the runtime decide (usually one per core)."""


@runtime_checkable
class Session(Protocol):
    backend: str
    stateful: bool
    """True when the session keeps a KV cache inside: it is then a ``StatefulSession``."""
    keeps_values: bool
    """True when ``run_keep`` can keep outputs in the runtime's memory: it is then a ``KeepingSession``."""

    def input_specs(self) -> list[TensorSpec]: ...

    def output_specs(self) -> list[TensorSpec]: ...

    def run(self, inputs: Mapping[str, Any], output_names: list[str] | None = None) -> dict[str, Any]:
        """Run on numpy arrays keyed by input name; returns numpy arrays keyed by output name."""
        ...

    def model_bytes(self) -> int:
        """Bytes on disk of the model files this session loaded."""
        ...


class StatefulSession(Session, Protocol):
    """A decoder session whose KV cache lives inside it (OpenVINO's stateful IR): generation feeds
    no past tensors and reads no present ones."""

    def reset(self, batch: int = 1) -> None:
        """Empty the cache, sized for ``batch`` rows."""
        ...

    def select_rows(self, rows: Any) -> None:
        """Reorder or repeat the cache rows (beam search)."""
        ...


class KeepingSession(Session, Protocol):
    """A session with IO binding: ``keep`` outputs stay in the runtime's memory between runs and may
    be fed back as inputs (ONNX Runtime's OrtValues), so a KV cache is not copied each step."""

    def run_keep(
        self, inputs: Mapping[str, Any], fetch: list[str], keep: list[str]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Returns (``fetch`` outputs as numpy, ``keep`` outputs as runtime values)."""
        ...


class SessionBase:
    """What a session is unless it says otherwise: no cache inside, no IO binding."""

    stateful = False
    keeps_values = False
    max_positions: int | None = None
    """The longest sequence the session holds when it is shorter than the model's (an ExecuTorch
    decoder program's cache); None: the model's own limit."""


class Backend(Protocol):
    """A backend turns an artifact folder into a Session (``build`` steps join here as backends need them)."""

    name: str

    @classmethod
    def load(
        cls,
        artifact: Path,
        manifest: Mapping[str, Any],
        options: SessionOptions,
        model_file: str | None = None,
    ) -> Session:
        """``model_file``: one graph of a multi-graph artifact (encoder-decoders); default: the manifest's ``export.model_file``."""
        ...


def check_inputs(session: Session, inputs: Mapping[str, Any]) -> None:
    """Fail with the names when inputs are missing or unknown."""
    from edgekit.errors import InputError

    expected = [spec.name for spec in session.input_specs()]
    missing = [n for n in expected if n not in inputs]
    extra = [n for n in inputs if n not in expected]
    if missing or extra:
        raise InputError(
            f"{session.backend} session got inputs {sorted(inputs)}; missing {missing}, unexpected {extra}",
            f"pass exactly {expected}",
        )


def unreadable_model(path: Path, runtime: str, exc: Exception) -> InputError:
    """A model file its runtime cannot parse: damaged, or not written for it."""
    lines = [
        line
        for line in str(exc).splitlines()
        if line.strip() and not line.startswith(("Exception from", "Check "))
    ]
    # OpenVINO puts the reason last, under lines of source locations
    reason = (lines or [type(exc).__name__])[-1][:160]
    return InputError(
        f"{runtime} cannot read '{path}' ({reason})",
        "the file is damaged or is not this runtime's format; re-create the artifact (EDGEKIT_VERIFY=1 compares every file with its manifest's sha256)",
    )
