"""The plan of an optimize run: every stage (distil, export, quantize) with a key that hashes its
options and its inputs, and the cells (source x backend x precision) that are benched.

    teacher ──────────────────────────> export onnx ──> export <backend> <precision>   (one cell each)
    teacher ──distill L3──> student ──> export onnx ──> export <backend> <precision>

A stage's folder is ``stages/<name>-<key>``; it is complete when it holds a manifest (every stage
writes into a temp folder renamed into place), so a rerun reuses it and redoes only what is missing
or changed: a changed option or input changes the key of that stage and of every stage after it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.optimize.config import BACKEND_TARGETS, OptimizeConfig, Shape

TEACHER = "teacher"


@dataclass(frozen=True)
class Stage:
    name: str
    kind: str
    """'distill' or 'export'."""
    options: dict = field(hash=False)
    """The stage's config fields apart from its input and output folders."""
    inputs: tuple[str, ...]
    """Names of the stages whose folders it reads (none: it reads the teacher)."""
    key: str

    @property
    def folder(self) -> str:
        return f"{self.name}-{self.key}"


@dataclass(frozen=True)
class Cell:
    source: str
    """'teacher' or a student shape's name (L3, L4x256)."""
    backend: str
    precision: str
    stage: str
    """The export stage whose artifact is benched."""


@dataclass(frozen=True)
class Plan:
    stages: tuple[Stage, ...]
    cells: tuple[Cell, ...]
    reference: str
    """The teacher's fp32 ONNX stage: its PyTorch run is the quality and speed baseline."""

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)


def digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def input_hash(path: Path | None) -> str | None:
    """Content hash of a data file or folder (None stays None)."""
    from edgekit.artifacts import hash_folder, sha256_file

    if path is None:
        return None
    path = Path(path).expanduser()
    return hash_folder(path) if path.is_dir() else sha256_file(path)


def _distill_options(cfg: OptimizeConfig, shape: Shape) -> dict:
    options = {
        "task": cfg.task,
        "student_layers": shape.layers,
        "student_hidden": shape.hidden,
        "student_heads": shape.heads,
        "student_ffn": shape.ffn,
        "max_steps": cfg.max_steps,
        "batch_size": cfg.batch_size,
        "seq_len": cfg.seq_len,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "encoding": cfg.encoding,
        **(cfg.distill or {}),
    }
    return {k: v for k, v in options.items() if v is not None}


def _quantize_options(cfg: OptimizeConfig, backend: str, precision: str) -> dict:
    options: dict[str, Any] = {"target": BACKEND_TARGETS[backend], "precision": precision, "seed": cfg.seed}
    if precision == "int8":
        options.update(
            calib=str(Path(cfg.calib or cfg.data).expanduser().resolve()),
            calib_size=cfg.calib_size,
            seq_lens=(cfg.bench_seq_len,),
            encoding=cfg.encoding,
        )
        if cfg.int8_guard:
            options.update(max_drop=cfg.max_drop, eval_data=str(Path(cfg.eval_data).expanduser().resolve()))
    return options


def make_plan(cfg: OptimizeConfig, teacher_hash: str, hashes: dict[str, str | None]) -> Plan:
    """Every stage and cell; ``hashes`` holds the content hash of data, calib and eval_data."""
    from edgekit import __version__
    from edgekit.export import EXPORT_REVISION

    versions = {"edgekit": __version__, "export_revision": EXPORT_REVISION}
    stages: list[Stage] = []
    cells: list[Cell] = []
    sources = [(TEACHER, None)] + [(shape.name, shape) for shape in cfg.students]
    for source, shape in sources:
        upstream: tuple[str, ...] = ()
        base_key = teacher_hash
        if shape is not None:
            options = _distill_options(cfg, shape)
            key = digest("distill", teacher_hash, hashes.get("data"), options, versions)
            stages.append(Stage(f"distill-{source}", "distill", options, (), key))
            upstream, base_key = (f"distill-{source}",), key
        onnx_options = {"target": "onnx", "seed": cfg.seed}
        onnx = Stage(
            f"export-{source}-onnx",
            "export",
            onnx_options,
            upstream,
            digest("export", base_key, onnx_options, versions),
        )
        stages.append(onnx)
        for backend in cfg.backends:
            for precision in cfg.precisions:
                options = _quantize_options(cfg, backend, precision)
                data_keys = (hashes.get("calib"), hashes.get("eval_data")) if precision == "int8" else ()
                name = f"export-{source}-{backend}-{precision}"
                keyed = {k: v for k, v in options.items() if k not in ("calib", "eval_data")}  # by content
                key = digest("export", onnx.key, keyed, data_keys, versions)
                stages.append(Stage(name, "export", options, (onnx.name,), key))
                cells.append(Cell(source, backend, precision, name))
    return Plan(tuple(stages), tuple(cells), f"export-{TEACHER}-onnx")


def bench_key(plan: Plan, done: list[Cell], options: dict, eval_hash: str | None) -> str:
    """The bench stage is one run over every cell that was made: its key changes with any of them."""
    keys = sorted(plan.stage(c.stage).key for c in done)
    return digest("bench", plan.stage(plan.reference).key, keys, options, eval_hash)
