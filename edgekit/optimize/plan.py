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

from edgekit.optimize.config import (
    BACKEND_TARGETS,
    TASKS,
    OptimizeConfig,
    Shape,
    is_captioner,
    is_decoder,
    is_seq2seq,
)

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
        "student_vision_layers": shape.vision_layers,
        "max_steps": cfg.max_steps,
        "batch_size": cfg.batch_size,
        "seq_len": cfg.seq_len,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "encoding": cfg.encoding,
        **(cfg.distill or {}),
    }
    return {k: v for k, v in options.items() if v is not None}


def _target_options(cfg: OptimizeConfig, backend: str, precision: str) -> dict:
    options: dict[str, Any] = {"target": BACKEND_TARGETS[backend], "precision": precision, "seed": cfg.seed}
    if is_decoder(cfg.task):
        return {**options, "task": "text-generation"}  # int8/int4: weight-only, no calibration
    if is_seq2seq(cfg.task) and not is_captioner(cfg.task):
        return {**options, "task": "seq2seq"}  # speech and text: both graphs weight-only, no calibration
    if is_captioner(cfg.task):  # int8/int4: the vision encoder static INT8, the decoder weight-only
        if precision == "fp32":
            return options
        return {**options, "calib": str(Path(cfg.calib).expanduser().resolve()), "calib_size": cfg.calib_size}
    if precision == "int8":
        options.update(
            calib=str(Path(cfg.calib or cfg.data).expanduser().resolve()), calib_size=cfg.calib_size
        )
        if TASKS[cfg.task].text_data:  # speech and images: no text lengths or encoding
            options.update(seq_lens=(cfg.bench_seq_len,), encoding=cfg.encoding)
        if cfg.calib_text is not None:  # image-text: the text tower's calibration texts
            options["calib_text"] = str(Path(cfg.calib_text).expanduser().resolve())
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

    def add(name: str, kind: str, options: dict, inputs: tuple[str, ...], *keyed_by) -> Stage:
        """A stage keyed by its kind, ``keyed_by`` (what it reads, by key or content hash) and versions."""
        stage = Stage(name, kind, options, inputs, digest(kind, *keyed_by, versions))
        stages.append(stage)
        return stage

    for source, shape in [(TEACHER, None)] + [(shape.name, shape) for shape in cfg.students]:
        root: tuple[tuple[str, ...], str] = ((), teacher_hash)
        if shape is not None:
            options = _distill_options(cfg, shape)
            distilled = add(
                f"distill-{source}", "distill", options, (), teacher_hash, hashes.get("data"), options
            )
            root = ((distilled.name,), distilled.key)
        made: dict[tuple[str, str], Stage] = {}
        for backend, precision, parent in _route(cfg, source, root, add):
            if parent == "fp32":  # ONNX Runtime's weight-only graph from its own fp32 graph
                parent = ((made[backend, "fp32"].name,), made[backend, "fp32"].key)
            options = _target_options(cfg, backend, precision)
            by_content = ("calib", "calib_text", "eval_data")
            keyed = {k: v for k, v in options.items() if k not in by_content}  # those by their hashes
            data_keys = (hashes.get("calib"), hashes.get("eval_data")) if "calib" in options else ()
            if "calib_text" in options:
                data_keys += (hashes.get("calib_text"),)
            name = f"export-{source}-{backend}-{precision}"
            stage = add(name, "export", options, parent[0], parent[1], keyed, data_keys)
            made[backend, precision] = stage
            cells.append(Cell(source, backend, precision, stage.name))
    first = cells[0]
    reference = (
        f"export-{TEACHER}-onnx" if not is_decoder(cfg.task) else f"export-{TEACHER}-{first.backend}-fp32"
    )
    return Plan(tuple(stages), tuple(cells), reference)


def _route(cfg: OptimizeConfig, source: str, root: tuple, add) -> list[tuple[str, str, tuple]]:
    """(backend, precision, (inputs, base key)) for each cell of one source, in the order to make them.

    Encoders: one validated ONNX graph per source, every target converted from it. Decoders: each
    backend's fp32 graph from the source; ONNX Runtime's weight-only graphs from its fp32 graph
    ("fp32", when that is a cell too), OpenVINO's from the source (its IR is made from PyTorch).
    """
    order = [(b, p) for b in cfg.backends for p in cfg.precisions]
    if not is_decoder(cfg.task):
        options = {"target": "onnx", "seed": cfg.seed}
        onnx = add(f"export-{source}-onnx", "export", options, root[0], root[1], options)
        return [(b, p, ((onnx.name,), onnx.key)) for b, p in order]
    routes = []
    for backend in cfg.backends:  # fp32 first: ONNX Runtime's weight-only graphs read it
        for precision in sorted(cfg.precisions, key=lambda p: p != "fp32"):
            from_fp32 = backend == "ort" and precision != "fp32" and "fp32" in cfg.precisions
            routes.append((backend, precision, "fp32" if from_fp32 else root))
    return routes


def bench_key(plan: Plan, done: list[Cell], options: dict, eval_hash: str | None) -> str:
    """The bench stage is one run over every cell that was made: its key changes with any of them."""
    keys = sorted(plan.stage(c.stage).key for c in done)
    return digest("bench", plan.stage(plan.reference).key, keys, options, eval_hash)
