"""Checkpoints of a distillation run: written to a temp file and renamed, keyed by the settings
that decide the result, holding everything an exact resume needs (weights, optimizer, schedule,
RNG states, the step and the loss history)."""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

from edgekit.compress.distill.config import DistillConfig
from edgekit.errors import InputError

log = logging.getLogger("edgekit.distill")
CHECKPOINT = "checkpoint.pt"


def work_dir(out: Path) -> Path:
    return out.with_name(out.name + ".work")


def config_key(cfg: DistillConfig) -> str:
    keep = {
        k: str(v)
        for k, v in asdict(cfg).items()
        if k not in ("resume", "overwrite", "max_steps", "save_every")
    }
    return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def _rng_state() -> dict:
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    # plain lists and numbers only, so the checkpoint loads with weights_only=True
    numpy_state = [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]
    version, internal, gauss = random.getstate()
    return {"python": [version, list(internal), gauss], "numpy": numpy_state, "torch": torch.get_rng_state()}


def _set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])


def save_checkpoint(
    path: Path, step: int, distiller: Any, optimizer: Any, scheduler: Any, history: list[dict], key: str
) -> None:
    import torch

    state = {
        "step": step,
        "config_key": key,
        "student": distiller.student.state_dict(),
        "projection": distiller.projection.state_dict() if distiller.projection is not None else None,
        "momentum": distiller.momentum.model.state_dict() if distiller.momentum is not None else None,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": _rng_state(),
        "history": history,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def _load(path: Path) -> dict:
    """The checkpoint at ``path``, read with ``weights_only=True`` (tensors, numbers, strings and
    containers only: nothing in it can run code); a damaged file is named in one line."""

    import torch

    try:
        state = torch.load(path, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - the weights-only unpickler raises many types on a damaged file
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(
            f"the checkpoint in '{path.parent}' is damaged: {reason}",
            "remove it, or start again with --overwrite",
        ) from exc
    keys = ("step", "config_key", "student", "optimizer", "scheduler", "rng", "history")
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise InputError(
            f"the checkpoint in '{path.parent}' is damaged: it is not an edgekit distillation checkpoint",
            "remove it, or start again with --overwrite",
        )
    return state


def resume(loop: Any, student: Any, work: Path) -> None:

    state = _load(work / CHECKPOINT)
    if state["config_key"] != loop.key:
        raise InputError(
            f"the checkpoint in '{work}' was made with other settings",
            "resume with the same options (only --max-steps and --save-every may change), or --overwrite",
        )
    distiller = loop.distiller
    student.load_state_dict(state["student"])
    if distiller.projection is not None:
        distiller.projection.load_state_dict(state["projection"])
    if distiller.momentum is not None:
        distiller.momentum.model.load_state_dict(state["momentum"])
    loop.optimizer.load_state_dict(state["optimizer"])
    loop.scheduler.load_state_dict(state["scheduler"])
    _set_rng_state(state["rng"])
    loop.step, loop.history = state["step"], state["history"]
    log.info("resumed at step %d", loop.step)
