"""A student built from its teacher: fewer layers (and optionally narrower), weights copied where
shapes allow, every copy shape-checked and recorded."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.errors import InputError

_LAYER = re.compile(r"(^|\.)(layer|layers|h)\.(\d+)\.")
"""The layer index in a parameter name: BERT ``encoder.layer.3.``, Llama ``model.layers.3.``, GPT-2 ``h.3.``."""


@dataclass
class StudentPlan:
    teacher_layers: list[int]
    """Teacher layer (1-based) each student layer was initialised from, in order."""
    hidden_size: int
    num_heads: int
    intermediate_size: int
    copied: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    """Parameters left at their random initialisation (no teacher tensor of that shape)."""

    def as_dict(self) -> dict:
        return {
            "teacher_layers": self.teacher_layers,
            "hidden_size": self.hidden_size,
            "num_attention_heads": self.num_heads,
            "intermediate_size": self.intermediate_size,
            "copied_tensors": len(self.copied),
            "initialised_tensors": self.initialised,
        }


def student_config(
    teacher_config: Any, layers: int, hidden: int | None, heads: int | None, ffn: int | None
) -> Any:
    import copy

    config = copy.deepcopy(teacher_config)
    config.num_hidden_layers = layers
    if hidden is not None:
        config.hidden_size = hidden
    if heads is not None:
        config.num_attention_heads = heads
    if ffn is not None:
        config.intermediate_size = ffn
    if config.hidden_size % config.num_attention_heads:
        raise InputError(
            f"student width {config.hidden_size} is not divisible by {config.num_attention_heads} heads",
            "pick --student-hidden and --student-heads that divide",
        )
    return config


def build_student(
    teacher: Any,
    keep: list[int],
    hidden: int | None = None,
    heads: int | None = None,
    ffn: int | None = None,
    seed: int = 0,
) -> tuple[Any, StudentPlan]:
    """A model of the teacher's class with ``len(keep)`` layers; student layer i starts from teacher
    layer ``keep[i]`` (1-based) wherever the shapes match."""
    import torch

    n_teacher = int(teacher.config.num_hidden_layers)
    if not keep or any(not 1 <= k <= n_teacher for k in keep):
        raise InputError(
            f"student layers must come from teacher layers 1..{n_teacher}, got {keep}",
            f"pass --student-layers N with N <= {n_teacher}",
        )
    config = student_config(teacher.config, len(keep), hidden, heads, ffn)
    torch.manual_seed(seed)
    student = type(teacher)(config)
    plan = StudentPlan(
        list(keep), config.hidden_size, config.num_attention_heads, getattr(config, "intermediate_size", 0)
    )
    source = teacher.state_dict()
    target = student.state_dict()
    with torch.no_grad():
        for name, tensor in target.items():
            teacher_name = _LAYER.sub(
                lambda m: f"{m.group(1)}{m.group(2)}.{keep[int(m.group(3))] - 1}.", name, count=1
            )
            donor = source.get(teacher_name)
            if donor is not None and donor.shape == tensor.shape:
                tensor.copy_(donor)
                plan.copied.append(name)
            else:
                plan.initialised.append(name)
    student.load_state_dict(target)
    return student, plan


def save_student(student: Any, tokenizer: Any, teacher_dir: Path, out: Path) -> None:
    """An HF folder ``AutoModel`` loads: safetensors, config, tokenizer, and the teacher's
    sentence-transformers pooling files when it has them."""
    import shutil

    student.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    for name in ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"):
        if (teacher_dir / name).is_file():
            shutil.copy2(teacher_dir / name, out / name)
    for pool in teacher_dir.glob("*_Pooling"):
        if pool.is_dir():
            shutil.copytree(pool, out / pool.name, dirs_exist_ok=True)
            cfg = out / pool.name / "config.json"
            if cfg.is_file():
                import json

                data = json.loads(cfg.read_text())
                if "word_embedding_dimension" in data:
                    data["word_embedding_dimension"] = int(student.config.hidden_size)
                    cfg.write_text(json.dumps(data, indent=2))
