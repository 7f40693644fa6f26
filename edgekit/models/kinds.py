"""The model kinds edgekit serves, in one registry: dual, vision, ctc, decoder, seq2seq, encoder.

A kind is a shape of model (what goes in, what comes out, which graphs it exports to). Each entry
names two modules, imported only when asked for:

- its *definition* in ``edgekit.models`` (shared by export and the PyTorch reference runtime):
  ``TASKS``, ``claims(raw_config) -> task | None`` (auto-detection), ``spec_for(model_type)``
  and ``reference(model_dir, spec, task, model_file) -> ReferenceIO``;
- its *export* in ``edgekit.export.kinds`` (``check(cfg, target)`` and ``export(job)``).

Entries are tried in order by ``resolve_kind``; generic code never names a kind.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from edgekit.errors import InputError, did_you_mean


@dataclass(frozen=True)
class KindEntry:
    name: str
    definition: str
    """Module in edgekit.models with TASKS, claims, spec_for, reference."""
    exporter: str
    """Module in edgekit.export.kinds with check and export."""
    exclusive: bool = False
    """Its model types serve only its tasks (a vision model is never a text encoder)."""

    def module(self) -> ModuleType:
        return importlib.import_module(self.definition)

    def export_module(self) -> ModuleType:
        return importlib.import_module(self.exporter)

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.module().TASKS)


@dataclass(frozen=True)
class ReferenceIO:
    """How the PyTorch reference runs a built module: inputs by name, outputs as a tuple in order."""

    module: Any
    input_names: list[str]
    output_names: list[str]
    past_names: list[str] = field(default_factory=list)
    """Inputs the module takes as one list argument ``past`` (a KV cache), in this order."""
    image_inputs: bool = False
    first_input_as: str | None = None
    """The keyword the module takes its first input under (an encoder-decoder's ``features``)."""
    input_specs: dict[str, tuple[tuple, str]] | None = None
    """Input name -> (axes, dtype), where the inputs are neither token ids nor images (audio)."""


_KINDS: dict[str, KindEntry] = {
    entry.name: entry
    for entry in (
        KindEntry("dual", "edgekit.models.dual", "edgekit.export.kinds.dual", exclusive=True),
        KindEntry("vision", "edgekit.models.vision", "edgekit.export.kinds.vision", exclusive=True),
        KindEntry("ctc", "edgekit.models.ctc", "edgekit.export.kinds.ctc", exclusive=True),
        KindEntry("decoder", "edgekit.models.decoder", "edgekit.export.kinds.decoder"),
        KindEntry("seq2seq", "edgekit.models.seq2seq", "edgekit.export.kinds.seq2seq"),
        KindEntry("encoder", "edgekit.models.encoder", "edgekit.export.kinds.encoder"),
    )
}


def list_kinds() -> list[KindEntry]:
    return list(_KINDS.values())


def get_kind(name: str) -> KindEntry:
    entry = _KINDS.get(name)
    if entry is None:
        raise InputError(f"unknown model kind '{name}'", did_you_mean(name, _KINDS))
    return entry


def kind_for_task(task: str) -> KindEntry:
    """The kind that writes artifacts of ``task`` (the manifest's ``export.task``)."""
    for entry in _KINDS.values():
        if task in entry.tasks:
            return entry
    raise InputError(
        f"no model kind makes artifacts of task '{task}'", "re-export the model with this edgekit version"
    )


def resolve_kind(task: str, raw_config: dict) -> tuple[KindEntry, str]:
    """The kind for ``--task`` on a model with this config.json, and the task (``auto`` resolved
    where the kind can tell from the config; a text encoder resolves it from its folder)."""
    model_type = raw_config.get("model_type")
    for entry in _KINDS.values():
        module = entry.module()
        if entry.exclusive and model_type in module.model_types():
            if task != "auto" and task not in module.TASKS:
                raise InputError(
                    f"task '{task}' does not apply to the {entry.name} model '{model_type}'",
                    f"use --task auto or {' or '.join(module.TASKS)}",
                )
            return entry, task if task != "auto" else module.TASKS[0]
    known = ("auto",) + tuple(t for entry in _KINDS.values() if not entry.exclusive for t in entry.tasks)
    if task not in known:
        raise InputError(f"unknown task '{task}'", did_you_mean(task, known))
    for entry in _KINDS.values():
        if entry.exclusive:
            continue
        claimed = (
            entry.module().claims(raw_config) if task == "auto" else (task if task in entry.tasks else None)
        )
        if claimed is not None:
            return entry, claimed
    raise InputError(f"no model kind exports '{model_type}' as task '{task}'", "pass --task explicitly")
