"""The distill stage's configuration: one frozen dataclass, filled by the CLI, a YAML/JSON file, or Python."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import InputError, did_you_mean

TASKS = ("sentence-embedding", "sequence-classification", "masked-lm", "causal-lm", "image-text")
TASK_STAGES = {"image-text": "edgekit.compress.distill.image_text:STAGES"}
"""Tasks whose data, models and loss live in a module of their own (``stages.Stages``)."""


@dataclass(frozen=True)
class DistillConfig:
    teacher: Path
    data: Path
    out: Path
    student: Path | None = None
    """An HF folder to use as the student; else one is built from the teacher."""
    student_layers: int | None = None
    student_layer_list: tuple[int, ...] | None = None
    """Teacher layers (1-based) the student's layers start from; overrides the uniform choice."""
    student_vision_layers: int | None = None
    """image-text: layers the student's vision tower keeps; None = all (``student_layers`` is the text tower's)."""
    student_hidden: int | None = None
    student_heads: int | None = None
    student_ffn: int | None = None
    task: str = "sentence-embedding"
    seq_len: int = 128
    batch_size: int = 16
    max_steps: int = 1000
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    schedule: str = "cosine"
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    eval_fraction: float = 0.1
    seed: int = 0
    mask_probability: float = 0.15
    """masked-lm: share of tokens masked (80% [MASK], 10% random, 10% kept, as BERT)."""
    save_every: int = 100
    layer_map: str = "uniform"
    layer_map_list: tuple[int, ...] | None = None
    w_embed: float | None = None
    w_attn: float | None = None
    w_hidden: float | None = None
    """Layer-wise weights; None = 1.0 when teacher and student share a tokenizer, else 0."""
    w_pred: float = 1.0
    w_feature: float = 1.0
    """image-text: 1 - cosine between student and teacher embeddings, per tower."""
    a1: float = 1.0
    a2: float = 0.0
    temperature: float = 1.0
    attn_loss: str = "mse"
    pred_loss: str = "cosine"
    momentum_teacher: float | None = None
    """EMA decay of a momentum teacher (an average of the student); None = off."""
    w_momentum: float = 1.0
    encoding: str | None = None
    """Encoding of --data text files; None = UTF-8, strictly (undecodable bytes are refused)."""
    freeze: tuple[str, ...] = ()
    """Glob patterns on parameter names kept frozen, e.g. ``embeddings.word_embeddings.*``."""
    amp: str = "no"
    """Autocast during training: no, bf16 (CPU or GPU) or fp16 (GPU, with loss scaling)."""
    resume: bool = False
    overwrite: bool = False

    def loss_weights(self, same_tokenizer: bool) -> dict[str, float]:
        """The weight of each loss term. Layer-wise terms compare token positions, so they need one
        tokenizer; with two, only output-level losses apply."""
        layer_wise = {"embed": self.w_embed, "attn": self.w_attn, "hidden": self.w_hidden}
        if not same_tokenizer:
            asked = [k for k, v in layer_wise.items() if v]
            if asked:
                raise InputError(
                    f"teacher and student use different tokenizers, so the layer-wise '{asked[0]}' loss cannot line up their tokens",
                    "drop --w-embed/--w-attn/--w-hidden (output-level losses only), or give the student the teacher's tokenizer",
                )
            resolved = {k: 0.0 for k in layer_wise}
        else:
            resolved = {k: 1.0 if v is None else float(v) for k, v in layer_wise.items()}
        return {
            **resolved,
            "pred": self.w_pred,
            "momentum": self.w_momentum if self.momentum_teacher else 0.0,
        }

    def check(self) -> "DistillConfig":
        if self.task not in TASKS:
            raise InputError(
                f"task '{self.task}' is not available for distillation yet", f"use one of {', '.join(TASKS)}"
            )
        shrink = (self.student_layers, self.student_layer_list, self.student_vision_layers)
        if self.student is None and all(v is None for v in shrink):
            raise InputError(
                "no student given", "pass --student DIR, or --student-layers N to build one from the teacher"
            )
        if self.task == "image-text":
            widths = ("student_hidden", "student_heads", "student_ffn", "student_layer_list")
            asked = [name for name in widths if getattr(self, name) is not None]
            if asked:
                raise InputError(
                    f"--{asked[0].replace('_', '-')} is not available for image-text distillation yet",
                    "shrink the towers by depth: --student-layers (text) and --student-vision-layers",
                )
        for name in ("seq_len", "batch_size", "max_steps", "grad_accum", "save_every"):
            if getattr(self, name) < 1:
                raise InputError(
                    f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}",
                    "pass a positive integer",
                )
        if not 0 <= self.eval_fraction < 1:
            raise InputError(
                f"--eval-fraction must be in [0, 1), got {self.eval_fraction}",
                "pass e.g. --eval-fraction 0.1",
            )
        if self.lr <= 0 or self.temperature <= 0:
            raise InputError("--lr and --temperature must be positive", "pass e.g. --lr 1e-4 --temperature 1")
        if self.amp not in ("no", "bf16", "fp16"):
            raise InputError(f"--amp must be no, bf16 or fp16, got '{self.amp}'", "pass e.g. --amp bf16")
        if self.momentum_teacher is not None and not 0 < self.momentum_teacher < 1:
            raise InputError(
                f"--momentum-teacher is an EMA decay in (0, 1), got {self.momentum_teacher}",
                "pass e.g. --momentum-teacher 0.995",
            )
        if self.schedule not in ("cosine", "linear"):
            raise InputError(
                f"unknown schedule '{self.schedule}'", did_you_mean(self.schedule, ("cosine", "linear"))
            )
        if self.attn_loss not in ("mse", "kl") or self.pred_loss not in ("mse", "cosine"):
            raise InputError(
                f"--attn-loss must be mse or kl and --pred-loss mse or cosine (got {self.attn_loss}, {self.pred_loss})",
                "use the listed values",
            )
        return self


def load_config_file(path: Path, overrides: dict[str, Any]) -> DistillConfig:
    """Options from a YAML or JSON file; options given on the command line win."""
    from edgekit.config_file import read_config_file

    return read_config_file(
        path,
        DistillConfig,
        overrides,
        paths=("teacher", "data", "out", "student"),
        tuples=("student_layer_list", "layer_map_list", "freeze"),
        required=("teacher", "data", "out"),
    )
