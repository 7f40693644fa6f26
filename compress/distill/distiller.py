"""The loss of one distillation batch: teacher, student, the width projection and the momentum
(EMA) teacher; attention scores recomputed from each layer's own query/key projections."""

from __future__ import annotations

import math
from typing import Any

from edgekit.compress.distill.config import DistillConfig
from edgekit.compress.distill.data import mean_pool
from edgekit.errors import InputError


def _query_key(layer: Any) -> tuple[Any, Any, int]:
    """The query and key projections of a BERT-style layer, and its head count."""
    attn = getattr(getattr(layer, "attention", None), "self", None)
    if attn is None or not hasattr(attn, "query") or not hasattr(attn, "key"):
        raise InputError(
            f"the attention loss needs BERT-style layers (attention.self.query/key), not {type(layer).__name__}",
            "set --w-attn 0",
        )
    heads = getattr(attn, "num_attention_heads", None) or attn.config.num_attention_heads
    return attn.query, attn.key, int(heads)


def attention_scores(layer: Any, hidden: Any) -> Any:
    """Pre-softmax scores Q K^T / sqrt(d) of ``layer`` on its input ``hidden``: (batch, heads, seq, seq)."""
    query, key, heads = _query_key(layer)
    b, s, _ = hidden.shape
    q = query(hidden).view(b, s, heads, -1).transpose(1, 2)
    k = key(hidden).view(b, s, heads, -1).transpose(1, 2)
    return q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])


class MomentumTeacher:
    """An exponential moving average of the student (ALBEF-style momentum distillation):
    after each optimizer step, ``p_ema = decay * p_ema + (1 - decay) * p_student``."""

    def __init__(self, student: Any, decay: float):
        import copy

        self.decay = decay
        self.model = copy.deepcopy(student).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def update(self, student: Any) -> None:
        import torch

        with torch.no_grad():
            for ema, live in zip(self.model.parameters(), student.parameters()):
                ema.mul_(self.decay).add_(live.detach(), alpha=1 - self.decay)
            for ema, live in zip(self.model.buffers(), student.buffers()):
                ema.copy_(live)


class Distiller:
    """Teacher, student, projection and the loss of one batch."""

    def __init__(
        self, cfg: DistillConfig, teacher: Any, student: Any, layers: list[int], weights: dict[str, float]
    ):
        import torch

        self.cfg, self.teacher, self.student, self.layers, self.weights = (
            cfg,
            teacher,
            student,
            layers,
            weights,
        )
        t_width, s_width = teacher.config.hidden_size, student.config.hidden_size
        torch.manual_seed(cfg.seed + 1)
        self.projection = torch.nn.Linear(s_width, t_width) if s_width != t_width else None
        self.momentum = MomentumTeacher(student, cfg.momentum_teacher) if cfg.momentum_teacher else None
        self.student_forward = student
        """What the forward pass calls: the student, or its DistributedDataParallel wrapper."""

    def parameters(self) -> list[Any]:
        params = [p for p in self.student.parameters() if p.requires_grad]
        return params + (list(self.projection.parameters()) if self.projection is not None else [])

    def _proj(self, x: Any) -> Any:
        return self.projection(x) if self.projection is not None else x

    def loss(
        self, batch: dict[str, Any], teacher_batch: dict[str, Any] | None = None, labels: Any | None = None
    ) -> tuple[Any, dict[str, float]]:
        """The loss of one batch; ``teacher_batch`` is the same texts in the teacher's tokens when
        the tokenizers differ (then only output-level terms are on)."""
        import torch

        from edgekit.compress.distill.losses import (
            attention_score_loss,
            embedding_loss,
            masked_mse,
            soft_cross_entropy,
            total_loss,
        )

        cfg, w, mask = self.cfg, self.weights, batch["attention_mask"]
        teacher_batch = teacher_batch or batch
        with torch.no_grad():
            t_out = self.teacher(**teacher_batch, output_hidden_states=True)
        s_out = self.student_forward(**batch, output_hidden_states=True)
        t_h, s_h = t_out.hidden_states, s_out.hidden_states
        terms: dict[str, Any] = {}
        if w["embed"]:
            terms["embed"] = masked_mse(self._proj(s_h[0]), t_h[0], mask)
        if w["hidden"]:
            terms["hidden"] = sum(
                masked_mse(self._proj(s_h[m]), t_h[g], mask) for m, g in enumerate(self.layers, 1)
            ) / len(self.layers)
        if w["attn"]:
            s_layers, t_layers = _encoder_layers(self.student), _encoder_layers(self.teacher)
            total = 0
            for m, g in enumerate(self.layers, 1):
                with torch.no_grad():
                    t_scores = attention_scores(t_layers[g - 1], t_h[g - 1])
                total = total + attention_score_loss(
                    attention_scores(s_layers[m - 1], s_h[m - 1]), t_scores, mask, cfg.attn_loss
                )
            terms["attn"] = total / len(self.layers)
        student_loss = None
        if cfg.task in ("masked-lm", "causal-lm"):
            s_logits, t_logits = s_out.logits, t_out.logits
            if cfg.task == "causal-lm":  # position i predicts token i + 1
                s_logits, t_logits, labels = s_logits[:, :-1], t_logits[:, :-1], labels[:, 1:]
            where = labels != -100
            if w["pred"]:
                terms["pred"] = soft_cross_entropy(s_logits, t_logits, cfg.temperature, mask=where)
            if cfg.a2:
                student_loss = torch.nn.functional.cross_entropy(
                    s_logits.reshape(-1, s_logits.shape[-1]), labels.reshape(-1), ignore_index=-100
                )
        elif cfg.task == "sequence-classification":
            if w["pred"]:
                terms["pred"] = soft_cross_entropy(s_out.logits, t_out.logits, cfg.temperature)
            if labels is not None and cfg.a2:
                student_loss = torch.nn.functional.cross_entropy(s_out.logits, labels)
        elif w["pred"]:
            terms["pred"] = embedding_loss(
                self._proj(mean_pool(s_h[-1], mask)),
                mean_pool(t_h[-1], teacher_batch["attention_mask"]),
                cfg.pred_loss,
            )
        if self.momentum is not None:
            with torch.no_grad():
                ema = mean_pool(self.momentum.model(**batch).last_hidden_state, mask)
            terms["momentum"] = embedding_loss(mean_pool(s_h[-1], mask), ema, cfg.pred_loss)
        return total_loss(terms, w, cfg.a1, cfg.a2, student_loss)


def bert_style(model: Any) -> bool:
    try:
        _query_key(_encoder_layers(model)[0])
        return True
    except InputError:
        return False


def _encoder_layers(model: Any) -> Any:
    model = getattr(model, "base_model", model)
    for path in ("encoder.layer", "transformer.layer"):
        obj = model
        for part in path.split("."):
            obj = getattr(obj, part, None)
        if obj is not None:
            return obj
    raise InputError(f"cannot find the layers of {type(model).__name__}", "set --w-attn 0")
