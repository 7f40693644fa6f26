"""Distillation losses against values worked out by hand on tiny tensors, and the layer map."""

from __future__ import annotations

import math

import pytest
import torch

from edgekit.compress.distill.losses import (
    attention_score_loss,
    embedding_loss,
    layer_map,
    masked_mse,
    soft_cross_entropy,
    total_loss,
)
from edgekit.errors import InputError


def test_layer_maps():
    assert layer_map(3, 6) == [2, 4, 6]  # TinyBERT's uniform g(m) = m * N / M
    assert layer_map(4, 12, "uniform") == [3, 6, 9, 12]
    assert layer_map(3, 6, "last") == [4, 5, 6]
    assert layer_map(2, 6, "list", [1, 5]) == [1, 5]
    assert layer_map(4, 6) == [2, 3, 4, 6]  # 1.5, 3, 4.5, 6 rounded half to even
    with pytest.raises(InputError, match="needs 3 teacher layers"):
        layer_map(3, 6, "list", [1, 2])
    with pytest.raises(InputError, match="out of range"):
        layer_map(2, 6, "list", [1, 7])
    with pytest.raises(InputError, match="unknown layer map"):
        layer_map(2, 6, "evenly")


def test_masked_mse_ignores_padding():
    s = torch.tensor([[[1.0, 1.0], [5.0, 5.0]]])  # (batch 1, seq 2, dim 2); position 2 is padding
    t = torch.tensor([[[0.0, 2.0], [0.0, 0.0]]])
    mask = torch.tensor([[1, 0]])
    assert masked_mse(s, t, mask).item() == pytest.approx(1.0)  # ((1-0)^2 + (1-2)^2) / 2
    assert masked_mse(s, t).item() == pytest.approx((1 + 1 + 25 + 25) / 4)


def test_attention_mse_on_real_query_key_pairs_only():
    mask = torch.tensor([[1, 1, 0]])
    s = torch.zeros(1, 1, 3, 3)
    t = torch.zeros(1, 1, 3, 3)
    t[0, 0, 0, 1] = 2.0  # a real pair: counts, (2)^2 over 4 real pairs = 1.0
    t[0, 0, 2, 2] = 100.0  # padding: ignored
    t[0, 0, 0, 2] = 100.0  # key is padding: ignored
    assert attention_score_loss(s, t, mask, "mse").item() == pytest.approx(1.0)


def test_attention_kl_by_hand():
    mask = torch.tensor([[1, 1]])
    t = torch.tensor([[[[math.log(3.0), 0.0], [0.0, 0.0]]]])  # row 0: p = (3/4, 1/4); row 1: (1/2, 1/2)
    s = torch.zeros(1, 1, 2, 2)  # q = (1/2, 1/2) in both rows
    row0 = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert attention_score_loss(s, t, mask, "kl").item() == pytest.approx(
        row0 / 2, rel=1e-5
    )  # row 1 has KL 0
    masked = torch.tensor([[1, 0]])
    t2 = torch.tensor([[[[0.0, 50.0], [0.0, 0.0]]]])  # all the mass on a padded key: masked out -> 0
    assert attention_score_loss(s, t2, masked, "kl").item() == pytest.approx(0.0, abs=1e-6)


def test_attention_needs_matching_heads():
    with pytest.raises(InputError, match="heads"):
        attention_score_loss(
            torch.zeros(1, 2, 2, 2), torch.zeros(1, 4, 2, 2), torch.ones(1, 2, dtype=torch.long)
        )


def test_soft_cross_entropy_by_hand():
    teacher = torch.tensor([[0.0, 0.0]])  # p = (1/2, 1/2) at any temperature
    student = torch.tensor([[math.log(3.0) * 2, 0.0]])  # at T=2: q = (3/4, 1/4)
    expected = -(0.5 * math.log(0.75) + 0.5 * math.log(0.25)) * 4  # times T^2
    assert soft_cross_entropy(student, teacher, temperature=2.0).item() == pytest.approx(expected, rel=1e-6)


def test_embedding_losses():
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0]])
    assert embedding_loss(a, b, "mse").item() == pytest.approx(1.0)
    assert embedding_loss(a, b, "cosine").item() == pytest.approx(1.0)
    assert embedding_loss(a, a * 3, "cosine").item() == pytest.approx(0.0, abs=1e-7)


def test_total_loss_weights():
    terms = {"embed": torch.tensor(1.0), "hidden": torch.tensor(2.0), "attn": torch.tensor(5.0)}
    total, logged = total_loss(
        terms, {"embed": 1.0, "hidden": 0.5, "attn": 0.0}, a1=2.0, a2=0.5, student_loss=torch.tensor(4.0)
    )
    assert total.item() == pytest.approx(2.0 * (1.0 + 1.0) + 0.5 * 4.0)
    assert logged == {"embed": 1.0, "hidden": 2.0, "attn": 5.0, "student": 4.0, "total": 6.0}
