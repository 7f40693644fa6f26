"""The distillation losses (TinyBERT / the Zidong Taichu light-model recipe), on plain tensors.

    L_total = a1 * L_kd + a2 * L_student
    L_kd    = w_embed * L_embed + w_attn * L_attn + w_hidn * L_hidn + w_pred * L_pred

- ``L_embed``: MSE between the embedding outputs (student projected to the teacher's width);
- ``L_attn``: per head, MSE between pre-softmax attention scores over real (unpadded) query and
  key positions, or KL between the attention distributions;
- ``L_hidn``: MSE between each student layer's output and the output of teacher layer g(m);
- ``L_pred``: soft cross-entropy with temperature T on logits (scaled by T^2), or for sentence
  embeddings MSE / (1 - cosine) between the pooled embeddings.
"""

from __future__ import annotations

from typing import Any

from edgekit.errors import InputError

LAYER_MAPS = ("uniform", "last", "list")


def layer_map(
    student_layers: int, teacher_layers: int, kind: str = "uniform", explicit: list[int] | None = None
) -> list[int]:
    """g(m) for m = 1..M as teacher layer numbers (1-based, 0 = the embeddings).

    uniform: g(m) = m * N / M (TinyBERT); last: the last M teacher layers; list: ``explicit``."""
    if student_layers < 1 or teacher_layers < 1:
        raise InputError(
            f"layer counts must be positive (student {student_layers}, teacher {teacher_layers})",
            "check the models",
        )
    if kind == "uniform":
        if teacher_layers % student_layers:
            return [round(m * teacher_layers / student_layers) for m in range(1, student_layers + 1)]
        return [m * teacher_layers // student_layers for m in range(1, student_layers + 1)]
    if kind == "last":
        if student_layers > teacher_layers:
            raise InputError(
                f"a last-{student_layers} map needs at least {student_layers} teacher layers, the teacher has {teacher_layers}",
                "use --layer-map uniform",
            )
        return list(range(teacher_layers - student_layers + 1, teacher_layers + 1))
    if kind == "list":
        if explicit is None or len(explicit) != student_layers:
            raise InputError(
                f"--layer-map list needs {student_layers} teacher layers, got {explicit}",
                f"pass e.g. --layer-map-list {','.join(str(i) for i in range(2, 2 * student_layers + 1, 2))}",
            )
        bad = [g for g in explicit if not 1 <= g <= teacher_layers]
        if bad:
            raise InputError(
                f"teacher layers {bad} are out of range 1..{teacher_layers}", "number teacher layers from 1"
            )
        if list(explicit) != sorted(explicit):
            raise InputError(
                f"the layer map {explicit} must increase with the student layer",
                "list teacher layers in order",
            )
        return list(explicit)
    raise InputError(f"unknown layer map '{kind}'", f"use one of {', '.join(LAYER_MAPS)}")


def masked_mse(student: Any, teacher: Any, mask: Any | None = None) -> Any:
    """Mean squared error over the positions where ``mask`` (batch, seq) is 1, every feature counted."""
    diff = (student - teacher) ** 2
    if mask is None:
        return diff.mean()
    weights = mask.to(diff.dtype)
    while weights.dim() < diff.dim():
        weights = weights.unsqueeze(-1)
    weights = weights.expand_as(diff)
    return (diff * weights).sum() / weights.sum().clamp(min=1)


def attention_mask_2d(mask: Any) -> Any:
    """(batch, seq) padding mask -> (batch, 1, seq, seq): 1 where query and key are both real tokens."""
    m = mask.float()
    return m[:, None, :, None] * m[:, None, None, :]


def attention_score_loss(student_scores: Any, teacher_scores: Any, mask: Any, kind: str = "mse") -> Any:
    """Per-head loss between attention scores (batch, heads, seq, seq), padding masked out.

    ``mse``: on the pre-softmax scores; ``kl``: KL(teacher || student) of the softmax over real keys,
    averaged over real query positions and heads."""
    import torch

    if student_scores.shape[1] != teacher_scores.shape[1]:
        raise InputError(
            f"attention loss compares heads one to one: the student has {student_scores.shape[1]} heads, the teacher {teacher_scores.shape[1]}",
            "give the student the teacher's head count, or set the attention weight to 0",
        )
    pair = attention_mask_2d(mask)
    if kind == "mse":
        diff = (student_scores - teacher_scores) ** 2 * pair
        return diff.sum() / (pair.sum() * student_scores.shape[1]).clamp(min=1)
    if kind == "kl":
        key_mask = mask[:, None, None, :].bool()
        neg = torch.finfo(student_scores.dtype).min
        log_s = torch.log_softmax(student_scores.masked_fill(~key_mask, neg), dim=-1)
        log_t = torch.log_softmax(teacher_scores.masked_fill(~key_mask, neg), dim=-1)
        kl = (log_t.exp() * (log_t - log_s)).masked_fill(~key_mask, 0.0).sum(-1)  # (batch, heads, query)
        query = mask[:, None, :].float().expand_as(kl)
        return (kl * query).sum() / query.sum().clamp(min=1)
    raise InputError(f"unknown attention loss '{kind}'", "use mse or kl")


def soft_cross_entropy(
    student_logits: Any, teacher_logits: Any, temperature: float = 1.0, mask: Any | None = None
) -> Any:
    """-sum p_T log q_S with both softened by T, times T^2 (so gradients keep their scale)."""
    import torch

    t = float(temperature)
    target = torch.softmax(teacher_logits / t, dim=-1)
    loss = -(target * torch.log_softmax(student_logits / t, dim=-1)).sum(-1)
    if mask is not None:
        weights = mask.float()
        return (loss * weights).sum() / weights.sum().clamp(min=1) * t * t
    return loss.mean() * t * t


def embedding_loss(student: Any, teacher: Any, kind: str = "mse") -> Any:
    """Between pooled sentence embeddings (batch, dim): MSE, or 1 - cosine."""
    import torch

    if kind == "mse":
        return ((student - teacher) ** 2).mean()
    if kind == "cosine":
        return (1 - torch.nn.functional.cosine_similarity(student, teacher, dim=-1)).mean()
    raise InputError(f"unknown embedding loss '{kind}'", "use mse or cosine")


def total_loss(
    terms: dict[str, Any], weights: dict[str, float], a1: float, a2: float, student_loss: Any | None = None
) -> tuple[Any, dict[str, float]]:
    """``a1 * sum_k w_k * L_k + a2 * L_student``; also returns each term as a float for logging."""
    kd = sum(weights.get(name, 0.0) * value for name, value in terms.items() if weights.get(name, 0.0))
    total = a1 * kd
    if student_loss is not None and a2:
        total = total + a2 * student_loss
    logged = {name: float(value.detach()) for name, value in terms.items()}
    if student_loss is not None:
        logged["student"] = float(student_loss.detach())
    logged["total"] = float(total.detach()) if hasattr(total, "detach") else float(total)
    return total, logged
