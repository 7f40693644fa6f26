"""What a distillation step reads: the held-out split, label ids, the batch of each step (a
seeded permutation per epoch, so a resumed run sees the same data), language-model inputs and
labels, and mean pooling."""

from __future__ import annotations

import random
from typing import Any

from edgekit.errors import InputError

LM_TASKS = ("masked-lm", "causal-lm")
"""Tasks whose prediction term compares vocabulary logits (teacher and student share a tokenizer)."""

AUTO_CLASSES = {
    "sentence-embedding": "AutoModel",
    "sequence-classification": "AutoModelForSequenceClassification",
    "masked-lm": "AutoModelForMaskedLM",
    "causal-lm": "AutoModelForCausalLM",
}


def split_held_out(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of the training and held-out examples (a seeded shuffle; held out = never trained on)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    n_eval = int(n * fraction)
    return sorted(order[n_eval:]), sorted(order[:n_eval])


def label_ids(labels: list[str], teacher_config: Any) -> list[int]:
    """Label names to the teacher's class ids (its ``label2id`` when the names match, else the
    sorted names in order); the count must match the teacher's classifier."""
    names = sorted(set(labels))
    n = int(getattr(teacher_config, "num_labels", 0))
    known = {str(k): int(v) for k, v in (getattr(teacher_config, "label2id", None) or {}).items()}
    if set(names) <= set(known):
        return [known[label] for label in labels]
    if len(names) != n:
        raise InputError(
            f"the data has {len(names)} labels {names[:6]} but the teacher classifies into {n}",
            "give data with the teacher's labels (names from its config.json label2id, or exactly that many classes)",
        )
    index = {name: i for i, name in enumerate(names)}
    return [index[label] for label in labels]


def batch_indices(step: int, n: int, batch: int, seed: int) -> list[int]:
    """The examples of global batch ``step``: epoch e walks a permutation seeded by (seed, e)."""
    import numpy as np

    per_epoch = max(1, n // batch)
    epoch, pos = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [int(i) for i in order[pos * batch : pos * batch + batch]]


def lm_batch(
    enc: dict[str, Any], task: str, tokenizer: Any, step: int, seed: int, probability: float
) -> tuple[dict[str, Any], Any]:
    """Inputs and labels for the language-model tasks. masked-lm masks tokens with a generator
    seeded by (seed, step), so a resumed run masks exactly as an uninterrupted one."""
    import torch

    ids, mask = enc["input_ids"], enc["attention_mask"]
    if task == "causal-lm":
        labels = ids.masked_fill(mask == 0, -100)
        return enc, labels
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    special = torch.tensor([[t in tokenizer.all_special_ids for t in row] for row in ids.tolist()])
    chosen = (torch.rand(ids.shape, generator=gen) < probability) & (mask == 1) & ~special
    labels = ids.masked_fill(~chosen, -100)
    roll = torch.rand(ids.shape, generator=gen)
    masked = ids.clone()
    masked[chosen & (roll < 0.8)] = tokenizer.mask_token_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    masked[swap] = torch.randint(len(tokenizer), ids.shape, generator=gen)[swap]
    return {**enc, "input_ids": masked}, labels


def mean_pool(hidden: Any, mask: Any) -> Any:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)
