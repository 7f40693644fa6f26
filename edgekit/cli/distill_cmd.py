"""``edgekit distill``: options (or a YAML/JSON file) into a DistillConfig, then the student's summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from edgekit.cli._common import Encoding, Overwrite, Verbose, handled, split_list

_H = {
    "teacher": "Teacher: a Hugging Face model folder.",
    "data": "Training text: .txt (a text per line), .jsonl (field 'text') or a folder of .txt files.",
    "out": "Student folder to write (HF folder, ready for 'edgekit export').",
    "config": "YAML/JSON file with any of these options (command-line options win).",
    "student": "Use this HF folder as the student.",
    "student_layers": "Build a student with N layers from the teacher (uniformly chosen teacher layers).",
    "student_layer_list": "Teacher layers (1-based, comma-separated) the student layers start from.",
    "student_hidden": "Narrower student width (a learned projection bridges the widths).",
    "task": "sentence-embedding, sequence-classification (labels from a jsonl 'label' field or class subfolders), masked-lm, causal-lm, or image-text (CLIP-family teachers; --data is image-text pairs).",
    "student_vision_layers": "image-text: layers the student's vision tower keeps (default: all; --student-layers sets the text tower's).",
    "w_feature": "image-text: weight of 1 - cosine between student and teacher embeddings, per tower.",
    "a2": "Weight of the student's own task loss (cross-entropy on the labels).",
    "a1": "Weight of the distillation loss L_kd.",
    "schedule": "cosine or linear decay after warmup.",
    "save_every": "Checkpoint every N steps.",
    "eval_fraction": "Held-out share of the data, never trained on.",
    "layer_map": "g(m): uniform, last or list.",
    "layer_map_list": "Teacher layer for each student layer (with --layer-map list).",
    "attn_loss": "mse (pre-softmax scores) or kl.",
    "pred_loss": "mse or cosine on the pooled embedding.",
    "freeze": "Glob on parameter names to keep frozen (repeatable).",
    "momentum_teacher": "EMA decay of a momentum teacher (an average of the student), combined with the fixed teacher.",
    "amp": "Autocast while training: no, bf16 (CPU or GPU) or fp16 (GPU).",
    "resume": "Continue the interrupted run in --out.",
}


@handled
def distill(
    teacher: Annotated[Optional[Path], typer.Option(help=_H["teacher"])] = None,
    data: Annotated[Optional[Path], typer.Option(help=_H["data"])] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help=_H["out"])] = None,
    config: Annotated[Optional[Path], typer.Option(help=_H["config"])] = None,
    student: Annotated[Optional[Path], typer.Option(help=_H["student"])] = None,
    student_layers: Annotated[Optional[int], typer.Option(help=_H["student_layers"])] = None,
    student_layer_list: Annotated[Optional[str], typer.Option(help=_H["student_layer_list"])] = None,
    student_vision_layers: Annotated[Optional[int], typer.Option(help=_H["student_vision_layers"])] = None,
    student_hidden: Annotated[Optional[int], typer.Option(help=_H["student_hidden"])] = None,
    student_heads: Annotated[Optional[int], typer.Option()] = None,
    student_ffn: Annotated[Optional[int], typer.Option()] = None,
    task: Annotated[Optional[str], typer.Option(help=_H["task"])] = None,
    a2: Annotated[Optional[float], typer.Option(help=_H["a2"])] = None,
    a1: Annotated[Optional[float], typer.Option(help=_H["a1"])] = None,
    seq_len: Annotated[Optional[int], typer.Option()] = None,
    batch_size: Annotated[Optional[int], typer.Option()] = None,
    max_steps: Annotated[Optional[int], typer.Option()] = None,
    lr: Annotated[Optional[float], typer.Option()] = None,
    grad_accum: Annotated[Optional[int], typer.Option()] = None,
    schedule: Annotated[Optional[str], typer.Option(help=_H["schedule"])] = None,
    save_every: Annotated[Optional[int], typer.Option(help=_H["save_every"])] = None,
    eval_fraction: Annotated[Optional[float], typer.Option(help=_H["eval_fraction"])] = None,
    layer_map: Annotated[Optional[str], typer.Option(help=_H["layer_map"])] = None,
    layer_map_list: Annotated[Optional[str], typer.Option(help=_H["layer_map_list"])] = None,
    w_embed: Annotated[Optional[float], typer.Option()] = None,
    w_attn: Annotated[Optional[float], typer.Option()] = None,
    w_hidden: Annotated[Optional[float], typer.Option()] = None,
    w_pred: Annotated[Optional[float], typer.Option()] = None,
    w_feature: Annotated[Optional[float], typer.Option(help=_H["w_feature"])] = None,
    temperature: Annotated[Optional[float], typer.Option()] = None,
    attn_loss: Annotated[Optional[str], typer.Option(help=_H["attn_loss"])] = None,
    pred_loss: Annotated[Optional[str], typer.Option(help=_H["pred_loss"])] = None,
    freeze: Annotated[Optional[list[str]], typer.Option(help=_H["freeze"])] = None,
    momentum_teacher: Annotated[Optional[float], typer.Option(help=_H["momentum_teacher"])] = None,
    w_momentum: Annotated[Optional[float], typer.Option()] = None,
    seed: Annotated[Optional[int], typer.Option()] = None,
    amp: Annotated[Optional[str], typer.Option(help=_H["amp"])] = None,
    resume: Annotated[bool, typer.Option(help=_H["resume"])] = False,
    encoding: Encoding = None,
    overwrite: Overwrite = False,
    verbose: Verbose = False,
) -> None:
    """Distil a teacher into a smaller student, layer by layer; resumable."""
    # the options as given, before any other name exists here; --config and --verbose are not config fields
    given = {k: v for k, v in locals().items() if k not in ("config", "verbose")}
    from edgekit.compress.distill.config import DistillConfig, load_config_file
    from edgekit.compress.distill.train import distill as run

    def ints(value: Optional[str], option: str):
        return split_list(value, int, option) if value is not None else None

    given.update(
        student_layer_list=ints(student_layer_list, "--student-layer-list"),
        layer_map_list=ints(layer_map_list, "--layer-map-list"),
        freeze=tuple(freeze) if freeze else None,
        resume=resume or None,
        overwrite=overwrite or None,
    )
    if config is not None:
        cfg = load_config_file(config, given)
    else:
        from edgekit.errors import InputError

        missing = [k for k in ("teacher", "data", "out") if given[k] is None]
        if missing:
            raise InputError(
                f"missing option --{missing[0]}", "give --teacher, --data and --out, or --config FILE"
            )
        cfg = DistillConfig(**{k: v for k, v in given.items() if v is not None})
    path = run(cfg)
    import os

    if os.environ.get("RANK", "0") == "0":
        _print_summary(path)


def _print_summary(path: Path) -> None:
    import json

    report = json.loads((path / "report.json").read_text())
    cos = report.get("mean_cosine_to_teacher")
    quality = (
        f", mean cosine to the teacher {cos:.4f} on {report.get('eval_texts', report.get('eval_pairs'))} held-out examples"
        if cos is not None
        else ""
    )
    if "student_perplexity" in report:
        quality = f", held-out perplexity {report['student_perplexity']:.2f} (teacher {report['teacher_perplexity']:.2f}) on {report['eval_texts']} texts"
    if "eval_pairs" in report and "student" in report:
        s, t = report["student"], report["teacher"]
        quality = f", held-out image-to-text R@1 {s['i2t_r1']:.3f} (teacher {t['i2t_r1']:.3f}), top-1 agreement with the teacher {s['i2t_r1_vs_fp32']:.3f} on {report['eval_pairs']} pairs"
    if "student_accuracy" in report:
        quality = f", held-out accuracy {report['student_accuracy']:.4f} (teacher {report['teacher_accuracy']:.4f}) on {report['eval_texts']} texts"
    print(
        f"wrote {path}: {report['student_parameters'] / 1e6:.1f}M parameters (teacher {report['teacher_parameters'] / 1e6:.1f}M), {report['speedup_vs_teacher']:.2f}x the teacher's PyTorch speed{quality}"
    )
