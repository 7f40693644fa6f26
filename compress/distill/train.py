"""``distill(config) -> student folder``: layer-wise distillation with checkpoints and exact resume.

Data order is a seeded permutation per epoch, so the data position is just the step number; a
checkpoint holds student, projection, optimizer, scheduler, the RNG states and the step, written
to a temp file and renamed. ``--resume`` continues from it and ends with the same weights as an
uninterrupted run on the same machine. Work state lives in ``<out>.work/`` until the student
folder is complete and renamed into place.
"""

from __future__ import annotations

import fnmatch
import logging
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgekit.compress.distill.checkpoint import CHECKPOINT, config_key, resume, save_checkpoint, work_dir
from edgekit.compress.distill.config import TASK_STAGES, DistillConfig
from edgekit.compress.distill.data import (
    AUTO_CLASSES,
    LM_TASKS,
    batch_indices,
    label_ids,
    lm_batch,
    split_held_out,
)
from edgekit.compress.distill.distiller import Distiller, bert_style
from edgekit.compress.distill.stages import Stages, run_section, write_distilled
from edgekit.errors import InputError
from edgekit.models.source import read_model_config

log = logging.getLogger("edgekit.compress.distill")


def load_student(cfg: DistillConfig, teacher: Any, auto: Any) -> tuple[Any, list[int], dict]:
    """The student and g(m): built from the teacher, or loaded from ``--student``."""
    from edgekit.compress.distill.losses import layer_map
    from edgekit.compress.distill.student import build_student

    n_teacher = int(teacher.config.num_hidden_layers)
    if cfg.student is not None:
        student = auto.from_pretrained(str(cfg.student), attn_implementation="eager")
        m = int(student.config.num_hidden_layers)
        plan = {"from": str(cfg.student)}
    else:
        keep = (
            list(cfg.student_layer_list)
            if cfg.student_layer_list
            else layer_map(int(cfg.student_layers), n_teacher, "uniform")
        )
        student, built = build_student(
            teacher, keep, cfg.student_hidden, cfg.student_heads, cfg.student_ffn, cfg.seed
        )
        m = len(keep)
        plan = {"built_from_teacher": built.as_dict()}
    layers = layer_map(m, n_teacher, cfg.layer_map, list(cfg.layer_map_list) if cfg.layer_map_list else None)
    return student, layers, plan


def freeze(model: Any, patterns: tuple[str, ...]) -> list[str]:
    frozen = []
    for name, param in model.named_parameters():
        if any(fnmatch.fnmatch(name, p) for p in patterns):
            param.requires_grad_(False)
            frozen.append(name)
    unused = [p for p in patterns if not any(fnmatch.fnmatch(n, p) for n in frozen)]
    if unused:
        raise InputError(
            f"--freeze '{unused[0]}' matches no parameter of the student",
            "check the names with: python -c \"from transformers import AutoModel; print([n for n, _ in AutoModel.from_pretrained('DIR').named_parameters()])\"",
        )
    return frozen


class Placement:
    """Where training runs: one process (CPU, or the GPU when there is one), or one process per
    GPU under ``torchrun`` / ``accelerate launch`` (read from WORLD_SIZE/RANK/LOCAL_RANK; gloo on
    CPU, nccl on GPUs). Rank 0 alone writes checkpoints and the student."""

    def __init__(self) -> None:
        import os

        import torch

        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        self.device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
        if self.world > 1 and not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        import torch

        if self.world > 1:
            torch.distributed.barrier()

    def close(self) -> None:
        import torch

        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def distill(cfg: DistillConfig, quiet: bool = False, report: Callable | None = None) -> Path:
    """Run (or resume) a distillation; returns the student folder. ``report(step, total, losses)``,
    when given, is called after each step in place of the progress bar (a caller's own display)."""
    place = Placement()
    try:
        return _distill(cfg, place, quiet or not place.main or report is not None, report)
    finally:
        place.close()


@dataclass
class _Data:
    train: list[str]
    held: list[str]
    train_idx: list[int]
    held_idx: list[int]
    labels: list[str] | None


@dataclass
class _Models:
    teacher: Any
    student: Any
    tokenizer: Any
    student_tokenizer: Any
    same_tokenizer: bool
    layers: list[int]
    plan: dict
    weights: dict[str, float]
    label_ids: list[int] | None


@dataclass
class _Loop:
    distiller: Distiller
    optimizer: Any
    scheduler: Any
    scaler: Any
    amp_dtype: Any
    frozen: list[str]
    key: str
    step: int = 0
    history: list[dict] = field(default_factory=list)


def _distill(cfg: DistillConfig, place: Placement, quiet: bool, report: Callable | None = None) -> Path:
    from edgekit.artifacts import now_iso

    cfg.check()
    started = now_iso()
    teacher_dir = Path(cfg.teacher).expanduser().resolve()
    read_model_config(teacher_dir)
    if cfg.student is not None:
        read_model_config(Path(cfg.student).expanduser())
    stages = _stages(cfg.task)
    data = stages.read_data(cfg)
    out = Path(cfg.out).expanduser()
    work = _prepare_work(cfg, out, place)
    try:
        models = stages.load_models(cfg, teacher_dir, data)
        loop = _make_loop(cfg, models, place, stages.make_distiller)
        if cfg.resume:
            resume(loop, models.student, work)
    except BaseException:
        if place.main and work.is_dir() and not (work / CHECKPOINT).exists():
            shutil.rmtree(work, ignore_errors=True)  # nothing to resume: leave no work folder behind
        raise
    _train(cfg, data, models, loop, place, work / CHECKPOINT, quiet, stages.micro_step, report)
    place.barrier()
    models.student.eval().cpu()
    models.teacher.cpu()
    if not place.main:
        return out
    stages.write_student(cfg, out, teacher_dir, data, models, loop, place, started)
    shutil.rmtree(work, ignore_errors=True)
    return out


def _read_data(cfg: DistillConfig) -> _Data:
    from edgekit.calibration.text import load_labeled

    texts, labels = load_labeled(cfg.data, encoding=cfg.encoding)
    if cfg.task == "sequence-classification" and labels is None:
        raise InputError(
            f"sequence classification needs labels, and '{cfg.data}' has none",
            "use a .jsonl with a 'label' field, or a folder of class subfolders of .txt files",
        )
    train_idx, held_idx = split_held_out(len(texts), cfg.eval_fraction, cfg.seed)
    train, held = [texts[i] for i in train_idx], [texts[i] for i in held_idx]
    if len(train) < cfg.batch_size:
        raise InputError(
            f"{len(train)} training texts are fewer than one batch of {cfg.batch_size}",
            "give more data or a smaller --batch-size",
        )
    return _Data(train, held, train_idx, held_idx, labels)


def _prepare_work(cfg: DistillConfig, out: Path, place: Placement) -> Path:
    """Check the work folder and ``out`` on every rank, then (rank 0) create the work folder."""
    from edgekit.artifacts import check_out_dir

    work = work_dir(out)
    if work.is_dir() and not any(work.iterdir()):
        work.rmdir()  # an empty work folder (a run that failed its checks) is not an interrupted run
    if work.exists() and not cfg.resume and not cfg.overwrite:
        raise InputError(
            f"an interrupted run is in '{work}'",
            "pass --resume to continue it, or --overwrite to start again",
        )
    if cfg.resume and not (work / CHECKPOINT).is_file():
        raise InputError(f"--resume: no checkpoint in '{work}'", "start without --resume")
    check_out_dir(out, cfg.overwrite, (cfg.teacher, cfg.student, cfg.data))
    if cfg.batch_size % place.world:
        raise InputError(
            f"--batch-size {cfg.batch_size} does not split over {place.world} processes",
            f"use a multiple of {place.world}",
        )
    place.barrier()  # every rank has checked before rank 0 touches the work folder
    if place.main:
        if cfg.overwrite and work.exists() and not cfg.resume:
            shutil.rmtree(work)
        work.mkdir(parents=True, exist_ok=True)
    place.barrier()
    if cfg.amp == "fp16" and place.device.type != "cuda":
        raise InputError("--amp fp16 needs a CUDA GPU", "use --amp bf16 on CPU, or --amp no")
    return work


def _load_models(cfg: DistillConfig, teacher_dir: Path, data: _Data) -> _Models:
    """Teacher (frozen), student, both tokenizers and the loss weights that apply to them."""
    import torch
    import transformers

    from edgekit.models.tokenizer import load_tokenizer

    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    tokenizer = load_tokenizer(teacher_dir, needed_for="distillation")
    auto = getattr(transformers, AUTO_CLASSES[cfg.task])
    teacher = auto.from_pretrained(str(teacher_dir), attn_implementation="eager").eval()
    ids = label_ids(data.labels, teacher.config) if cfg.task == "sequence-classification" else None
    for p in teacher.parameters():
        p.requires_grad_(False)
    student, layers, plan = load_student(cfg, teacher, auto)
    student_tokenizer = (
        load_tokenizer(Path(cfg.student), needed_for="distillation") if cfg.student is not None else tokenizer
    )
    same_tokenizer = student_tokenizer.get_vocab() == tokenizer.get_vocab()
    weights = cfg.loss_weights(same_tokenizer)
    if weights["attn"] and not bert_style(student):
        if cfg.w_attn:
            raise InputError(
                f"the attention loss needs BERT-style layers (attention.self.query/key), not {type(student).__name__}",
                "set --w-attn 0",
            )
        weights["attn"] = 0.0  # left at its default: off for this architecture
    if cfg.task in LM_TASKS and not same_tokenizer:
        raise InputError(
            f"{cfg.task} compares predictions over the vocabulary, so teacher and student need the same tokenizer",
            "give the student the teacher's tokenizer",
        )
    if cfg.task == "masked-lm" and tokenizer.mask_token_id is None:
        raise InputError(
            "masked-lm needs a tokenizer with a mask token",
            "use a teacher trained with masked language modelling",
        )
    if cfg.task == "causal-lm" and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
        student_tokenizer.pad_token = student_tokenizer.pad_token or student_tokenizer.eos_token
    return _Models(teacher, student, tokenizer, student_tokenizer, same_tokenizer, layers, plan, weights, ids)


def _make_loop(cfg: DistillConfig, models: Any, place: Placement, make_distiller: Any) -> _Loop:
    """Freeze what is asked, place the models, wrap for DDP, and make optimizer and schedule."""
    import torch
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    frozen = freeze(models.student, cfg.freeze)
    models.teacher.to(place.device)
    models.student.to(place.device).train()
    distiller = make_distiller(cfg, models)
    if distiller.projection is not None:
        distiller.projection.to(place.device)
    if distiller.momentum is not None:
        distiller.momentum.model.to(place.device)
    if place.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # find_unused_parameters: heads the losses never touch (e.g. the BERT pooler) get no gradient
        devices = [place.device.index] if place.device.type == "cuda" else None
        distiller.student_forward = DistributedDataParallel(
            models.student, device_ids=devices, find_unused_parameters=True
        )
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
    optimizer = torch.optim.AdamW(distiller.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    make = get_cosine_schedule_with_warmup if cfg.schedule == "cosine" else get_linear_schedule_with_warmup
    scheduler = make(optimizer, int(cfg.warmup_ratio * cfg.max_steps), cfg.max_steps)
    return _Loop(distiller, optimizer, scheduler, scaler, amp_dtype, frozen, config_key(cfg))


def _train(
    cfg: DistillConfig,
    data: Any,
    models: Any,
    loop: _Loop,
    place: Placement,
    ckpt: Path,
    quiet: bool,
    micro_step: Any,
    report: Callable | None = None,
) -> None:
    """Optimizer steps from ``loop.step`` to ``cfg.max_steps``, checkpointing every ``save_every``."""
    import torch

    from edgekit._progress import training_progress

    names = [n for n in ("embed", "attn", "hidden", "pred", "feature", "momentum") if models.weights.get(n)]
    with training_progress(cfg.max_steps, loop.step, names, quiet, report) as progress:
        while loop.step < cfg.max_steps:
            t0 = time.perf_counter()
            loop.optimizer.zero_grad(set_to_none=True)
            logged_sum: dict[str, float] = {}
            for micro in range(cfg.grad_accum):
                logged = micro_step(cfg, data, models, loop, place, loop.step * cfg.grad_accum + micro)
                for k, v in logged.items():
                    logged_sum[k] = logged_sum.get(k, 0.0) + v / cfg.grad_accum
            if loop.scaler is not None:
                loop.scaler.unscale_(loop.optimizer)
            torch.nn.utils.clip_grad_norm_(loop.distiller.parameters(), cfg.max_grad_norm)
            if loop.scaler is not None:
                loop.scaler.step(loop.optimizer)
                loop.scaler.update()
            else:
                loop.optimizer.step()
            loop.scheduler.step()
            if loop.distiller.momentum is not None:
                loop.distiller.momentum.update(models.student)
            loop.step += 1
            loop.history.append(
                {
                    "step": loop.step,
                    **logged_sum,
                    "lr": loop.scheduler.get_last_lr()[0],
                    "seconds": time.perf_counter() - t0,
                }
            )
            progress(loop.step, logged_sum)
            if place.main and (loop.step % cfg.save_every == 0 or loop.step == cfg.max_steps):
                save_checkpoint(
                    ckpt, loop.step, loop.distiller, loop.optimizer, loop.scheduler, loop.history, loop.key
                )


def _micro_step(
    cfg: DistillConfig, data: _Data, models: _Models, loop: _Loop, place: Placement, k: int
) -> dict[str, float]:
    """Forward and backward of micro-batch ``k`` (this rank's share of it); returns the logged terms."""
    import torch

    idx = batch_indices(k, len(data.train), cfg.batch_size, cfg.seed)[place.rank :: place.world]
    texts = [data.train[i] for i in idx]
    tokenize = {"padding": True, "truncation": True, "max_length": cfg.seq_len, "return_tensors": "pt"}
    inputs = dict(models.student_tokenizer(texts, **tokenize))
    t_enc = None if models.same_tokenizer else dict(models.tokenizer(texts, **tokenize))
    ids = models.label_ids
    labels = torch.tensor([ids[data.train_idx[i]] for i in idx]) if ids is not None else None
    if cfg.task in LM_TASKS:
        inputs, labels = lm_batch(
            inputs, cfg.task, models.student_tokenizer, k, cfg.seed, cfg.mask_probability
        )
    inputs = {key: v.to(place.device) for key, v in inputs.items()}
    t_enc = {key: v.to(place.device) for key, v in t_enc.items()} if t_enc is not None else None
    labels = labels.to(place.device) if labels is not None else None
    amp = loop.amp_dtype
    with torch.autocast(device_type=place.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        loss, logged = loop.distiller.loss(inputs, t_enc, labels)
    scaled = loss / cfg.grad_accum
    (loop.scaler.scale(scaled) if loop.scaler is not None else scaled).backward()
    return logged


def _write_student(
    cfg: DistillConfig,
    out: Path,
    teacher_dir: Path,
    data: _Data,
    models: _Models,
    loop: _Loop,
    place: Placement,
    started: str,
) -> None:
    """Evaluate on the held-out texts and write the student folder with its report and manifest."""
    from edgekit.compress.distill.report import evaluate, perplexity
    from edgekit.compress.distill.student import save_student

    teacher, student, student_tokenizer = models.teacher, models.student, models.student_tokenizer
    held_ids = [models.label_ids[i] for i in data.held_idx] if models.label_ids is not None else None
    report = evaluate(teacher, student, models.tokenizer, student_tokenizer, data.held, cfg, held_ids)
    if cfg.task in LM_TASKS and data.held:
        report.update(
            {
                "teacher_perplexity": perplexity(teacher, student_tokenizer, data.held, cfg),
                "student_perplexity": perplexity(student, student_tokenizer, data.held, cfg),
            }
        )
    distiller = loop.distiller
    section = {
        **run_section(cfg, models, loop, place),
        "projection": distiller.projection is not None,
        "same_tokenizer": models.same_tokenizer,
        "train_texts": len(data.train),
        "eval_texts": len(data.held),
    }
    write_distilled(
        cfg,
        out,
        teacher_dir,
        teacher.config.model_type,
        section,
        report,
        loop.history,
        lambda tmp: save_student(student, student_tokenizer, teacher_dir, tmp),
        started,
    )


_TEXT = Stages(
    _read_data,
    _load_models,
    lambda cfg, m: Distiller(cfg, m.teacher, m.student, m.layers, m.weights),
    _micro_step,
    _write_student,
)


def _stages(task: str) -> Stages:
    """The text tasks' stages, or those of another task's module (image-text pairs)."""
    if task in TASK_STAGES:
        import importlib

        module, name = TASK_STAGES[task].split(":")
        return getattr(importlib.import_module(module), name)
    return _TEXT
