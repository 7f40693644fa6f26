"""What differs between distillation tasks, as one record (text tasks in ``train.py``, image-text
pairs in ``image_text.py``), and the student folder every task ends with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class Stages:
    read_data: Callable
    """(cfg) -> data: read and split before any model loads."""
    load_models: Callable
    """(cfg, teacher_dir, data) -> models: teacher, student, tokenizer, g(m), loss weights."""
    make_distiller: Callable
    """(cfg, models) -> the loss of one batch, with the student and any momentum teacher."""
    micro_step: Callable
    """(cfg, data, models, loop, place, k) -> logged terms: forward and backward of micro-batch k."""
    write_student: Callable
    """(cfg, out, teacher_dir, data, models, loop, place, started): evaluate and write the folder."""


def write_distilled(
    cfg: Any,
    out: Path,
    teacher_dir: Path,
    model_type: str,
    section: dict,
    report: dict,
    history: list[dict],
    save: Callable[[Path], None],
    started: str,
) -> None:
    """The student folder, staged and renamed into place: what ``save`` writes, ``report.json``,
    the loss curves and the manifest."""
    from edgekit.artifacts import build_manifest, hash_folder, staged_output, write_json
    from edgekit.compress.distill.report import plot_losses

    with staged_output(out, cfg.overwrite, (teacher_dir, cfg.student, cfg.data)) as tmp:
        save(tmp)
        write_json(tmp / "report.json", {"losses": history, **report})
        plot_losses(history, tmp / "loss_curves.png")
        source = {"path": str(teacher_dir), "sha256": hash_folder(teacher_dir), "model_type": model_type}
        manifest = build_manifest(
            stage="distill",
            config=cfg,
            source=source,
            folder=tmp,
            started=started,
            seed=cfg.seed,
            distill=section,
            report=dict(report),
        )
        write_json(tmp / "manifest.json", manifest)


def run_section(cfg: Any, models: Any, loop: Any, place: Any) -> dict:
    """What the manifest's ``distill`` section says of any run: where and how it trained, the
    student plan, g(m), what was frozen, the loss weights and the steps taken."""
    return {
        "processes": place.world,
        "device": str(place.device),
        "amp": cfg.amp,
        "student": models.plan,
        "layer_map": models.layers,
        "frozen": loop.frozen,
        "momentum_teacher": cfg.momentum_teacher,
        "loss_weights": models.weights,
        "steps": loop.step,
    }
