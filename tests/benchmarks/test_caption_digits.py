"""The trained-captioner benchmark's data and scoring (the training run itself is the benchmark:
``python -m edgekit.benchmarks.caption_digits``)."""

from __future__ import annotations

from edgekit.benchmarks.caption_digits import TRAIN, WORDS, accuracy, write_digits


def test_digit_captions_name_the_digit_and_its_ink_and_held_out_images_are_apart(tmp_path):
    pairs, held = write_digits(tmp_path)
    assert len(pairs) == 1797 and len(list(held.iterdir())) == 1797 - TRAIN
    assert all(p.parent == held for p, _ in pairs[TRAIN:]) and all(p.parent != held for p, _ in pairs[:TRAIN])
    words = [c.split() for _, c in pairs]
    assert all(
        w[0] == "a" and w[1] in ("thin", "bold") and w[2] == "handwritten" and w[3] in WORDS for w in words
    )
    bold = sum(w[1] == "bold" for w in words[:TRAIN])
    assert 0.4 < bold / TRAIN < 0.6  # split at each digit's median ink


def test_accuracy_scores_whole_captions_and_digits_apart():
    truth = {"1.png": "a thin handwritten one", "2.png": "a bold handwritten two"}
    quality = [
        {"artifact": "fp32", "backend": "ort", "captions": {"1.png": "a thin handwritten one", "2.png": "a thin handwritten two"}},
        {"artifact": "int8", "backend": "ort", "captions": {"1.png": "a thin handwritten seven", "2.png": ""}},
    ]  # fmt: skip
    assert accuracy(quality, truth) == {
        "fp32/ort": {"caption": 0.5, "digit": 1.0},
        "int8/ort": {"caption": 0.0, "digit": 0.0},
    }
