from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import InputError
from edgekit.runtimes.generate import GenerationConfig, _sample, banned_ngram_tokens, position_ids


def test_top_k_and_top_p_keep_only_the_likely_tokens():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    rng = np.random.default_rng(0)
    assert {_sample(logits, GenerationConfig(do_sample=True, top_k=1), rng) for _ in range(50)} == {0}
    # top_p 0.7: the smallest set reaching 0.7 is {0, 1} (0.5 + 0.3)
    assert {_sample(logits, GenerationConfig(do_sample=True, top_p=0.7), rng) for _ in range(300)} == {0, 1}
    assert {_sample(logits, GenerationConfig(do_sample=True, top_k=3), rng) for _ in range(500)} == {0, 1, 2}


def test_sampling_follows_the_distribution_and_temperature():
    logits = np.log(np.array([0.75, 0.25]))
    rng = np.random.default_rng(1)
    draws = [_sample(logits, GenerationConfig(do_sample=True), rng) for _ in range(4000)]
    assert abs(np.mean(np.array(draws) == 0) - 0.75) < 0.03
    cold = [_sample(logits, GenerationConfig(do_sample=True, temperature=0.25), rng) for _ in range(2000)]
    # p0 at T=0.25: 0.75^4 / (0.75^4 + 0.25^4) = 81/82
    assert abs(np.mean(np.array(cold) == 0) - 81 / 82) < 0.015


def testposition_ids_count_real_tokens_and_pad_left_with_ones():
    mask = np.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(position_ids(mask, 5), [[1, 1, 0, 1, 2], [0, 1, 2, 3, 4]])
    np.testing.assert_array_equal(position_ids(mask, 1), [[2], [4]])


@pytest.mark.parametrize(
    "cfg,needle",
    [
        (GenerationConfig(max_new_tokens=0), "--max-new-tokens must be >= 1"),
        (GenerationConfig(top_k=5), "only apply when sampling"),
        (GenerationConfig(do_sample=True, temperature=0.0), "--temperature must be > 0"),
        (GenerationConfig(do_sample=True, top_p=0.0), "--top-p must be in"),
        (GenerationConfig(num_beams=4, do_sample=True), "beam sampling"),
        (GenerationConfig(num_beams=4, stop_strings=("\n",)), "cannot be used with --num-beams"),
        (GenerationConfig(length_penalty=2.0), "only apply to beam search"),
        (GenerationConfig(num_beams=2, early_stopping="sometimes"), "--early-stopping must be"),
        (GenerationConfig(num_beams=0), "--num-beams must be >= 1"),
    ],
)
def test_conflicting_generation_options_are_refused(cfg, needle):
    with pytest.raises(InputError, match=needle.replace("(", r"\(")):
        cfg.check()


def test_banned_ngrams_are_the_continuations_already_seen():
    seq = [5, 6, 7, 5, 6, 8, 5, 6]
    assert sorted(banned_ngram_tokens(seq, 3)) == [7, 8]  # "5 6" was followed by 7 and by 8
    assert banned_ngram_tokens(seq, 2) == [7, 8]  # "6" was followed by 7 and 8
    assert sorted(banned_ngram_tokens(seq, 1)) == [5, 6, 7, 8]
    assert banned_ngram_tokens([1, 2], 4) == [] and banned_ngram_tokens(seq, 0) == []
