"""Teacher-vs-student figures on the held-out split, and the loss curves."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def _embed(model: Any, tokenizer: Any, texts: list[str], seq_len: int) -> Any:
    import torch

    from edgekit.compress.distill.data import mean_pool

    rows = []
    with torch.inference_mode():
        for i in range(0, len(texts), 16):
            enc = tokenizer(
                texts[i : i + 16], padding=True, truncation=True, max_length=seq_len, return_tensors="pt"
            )
            out = model(**enc, output_hidden_states=True)
            rows.append(mean_pool(out.hidden_states[-1], enc["attention_mask"]))
    return torch.cat(rows) if rows else None


def _latency_ms(model: Any, tokenizer: Any, texts: list[str], seq_len: int, repeat: int = 5) -> float:

    enc = tokenizer(
        (texts * 8)[:8], padding="max_length", truncation=True, max_length=seq_len, return_tensors="pt"
    )
    return forward_ms(model, dict(enc), repeat)


def forward_ms(model: Any, batch: dict, repeat: int = 5) -> float:
    """Median milliseconds of ``model(**batch)`` over ``repeat`` runs, after one warm-up."""
    import torch

    times = []
    with torch.inference_mode():
        model(**batch)
        for _ in range(repeat):
            t0 = time.perf_counter()
            model(**batch)
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] * 1e3


def _accuracy(model: Any, tokenizer: Any, texts: list[str], labels: list[int], seq_len: int) -> float:
    import torch

    correct = 0
    with torch.inference_mode():
        for i in range(0, len(texts), 16):
            enc = tokenizer(
                texts[i : i + 16], padding=True, truncation=True, max_length=seq_len, return_tensors="pt"
            )
            correct += int((model(**enc).logits.argmax(-1) == torch.tensor(labels[i : i + 16])).sum())
    return correct / max(len(texts), 1)


def perplexity(model: Any, tokenizer: Any, texts: list[str], cfg: Any) -> float:
    """exp(mean token cross-entropy) on ``texts``: next-token for causal-lm, masked tokens (masks
    drawn with a fixed seed, the same for teacher and student) for masked-lm."""
    import math

    import torch

    from edgekit.compress.distill.data import lm_batch

    total, count = 0.0, 0
    with torch.inference_mode():
        for i in range(0, len(texts), 8):
            enc = dict(
                tokenizer(
                    texts[i : i + 8],
                    padding=True,
                    truncation=True,
                    max_length=cfg.seq_len,
                    return_tensors="pt",
                )
            )
            inputs, labels = lm_batch(
                enc, cfg.task, tokenizer, 10_000_000 + i, cfg.seed, cfg.mask_probability
            )
            logits = model(**inputs).logits
            if cfg.task == "causal-lm":
                logits, labels = logits[:, :-1], labels[:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100, reduction="sum"
            )
            total += float(loss)
            count += int((labels != -100).sum())
    return math.exp(total / max(count, 1))


def evaluate(
    teacher: Any,
    student: Any,
    tokenizer: Any,
    student_tokenizer: Any,
    held: list[str],
    cfg: Any,
    held_labels: list[int] | None = None,
) -> dict:
    """On the held-out texts: accuracy of both (classification), or the mean cosine of the student's
    embeddings to the teacher's (same width); sizes; PyTorch latency of both at batch 8 (median)."""
    import torch

    result: dict[str, Any] = {"eval_texts": len(held)}
    if held and held_labels is not None:
        result["teacher_accuracy"] = _accuracy(teacher, tokenizer, held, held_labels, cfg.seq_len)
        result["student_accuracy"] = _accuracy(student, student_tokenizer, held, held_labels, cfg.seq_len)
    elif (
        held and student.config.hidden_size == teacher.config.hidden_size and cfg.task == "sentence-embedding"
    ):
        s, t = (
            _embed(student, student_tokenizer, held, cfg.seq_len),
            _embed(teacher, tokenizer, held, cfg.seq_len),
        )
        result["mean_cosine_to_teacher"] = float(torch.nn.functional.cosine_similarity(s, t, dim=-1).mean())
    result["teacher_parameters"] = sum(p.numel() for p in teacher.parameters())
    result["student_parameters"] = sum(p.numel() for p in student.parameters())
    sample = held or ["a short text to time the models with"]
    teacher_ms = _latency_ms(teacher, tokenizer, sample, cfg.seq_len)
    student_ms = _latency_ms(student, student_tokenizer, sample, cfg.seq_len)
    result.update(
        {
            "teacher_ms_batch8": teacher_ms,
            "student_ms_batch8": student_ms,
            "speedup_vs_teacher": teacher_ms / student_ms,
        }
    )
    return result


def plot_losses(history: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if not history:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [h["step"] for h in history]
    for key in ("embed", "attn", "hidden", "pred", "total"):
        if key in history[0]:
            ax.plot(steps, [h[key] for h in history], label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
