"""``edgekit bench`` on image-text artifacts: each tower timed on every backend, and quality on
real image-text pairs (photos from scikit-image with captions written for them) against the
fp32 PyTorch reference: embedding cosines, recall against fp32's own ranking, recall of the true
caption, zero-shot accuracy and agreement. Tiny random CLIP: checks the path, not accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ..conftest import run_cli, save_photos
from ..export.test_dual import make_dual

CAPTIONS = {
    "chelsea": ("a tabby cat with orange fur", "cat"),
    "coffee": ("a cup of coffee on a saucer", "coffee"),
    "astronaut": ("an astronaut in a white space suit", "person"),
    "rocket": ("a rocket on its launch pad", "rocket"),
    "cat": ("a small cat looking up", "cat"),
    "camera": ("a man behind a camera on a tripod", "person"),
}


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """A tiny CLIP exported to ONNX (fp32) and to OpenVINO INT8, and a .jsonl of real photo pairs."""
    root = tmp_path_factory.mktemp("clip-bench")
    source = make_dual(root / "clip", "clip")
    photos = save_photos((root / "photos").mkdir() or root / "photos")
    pairs = root / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"image": f"photos/{name}.png", "text": text, "label": label}) + "\n"
            for name, (text, label) in CAPTIONS.items()
        )
    )
    onnx = root / "onnx"
    assert run_cli("export", "--model", str(source), "--out", str(onnx)).returncode == 0
    ov8 = root / "ov8"
    result = run_cli(
        "export", "--model", str(onnx), "--target", "openvino", "--precision", "int8",
        "--calib", str(photos), "--calib-text", str(pairs), "--out", str(ov8),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return onnx, ov8, pairs


def test_recall_counts_the_target_within_the_top_k():
    from edgekit.numerics import recall_at

    sims = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.7, 0.6, 0.1]])
    targets = np.array([0, 1, 1])  # row 0: first; row 1: second of three; row 2: second
    assert recall_at(sims, targets, 1) == pytest.approx(1 / 3)
    assert recall_at(sims, targets, 2) == pytest.approx(1.0)
    assert recall_at(sims, targets, 5) == pytest.approx(1.0)  # k past the columns: every column


def test_bench_times_each_tower_and_scores_pairs_against_fp32(clip, tmp_path):
    onnx, ov8, pairs = clip
    out = tmp_path / "bench"
    result = run_cli(
        "bench", str(onnx), str(ov8), "--backend", "torch,ort,openvino", "--batch", "1,2",
        "--seq-len", "8", "--repeat", "3", "--eval-data", str(pairs), "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads((out / "bench.json").read_text())
    cases = {(r["artifact"], r["backend"], r["tower"], r["batch"], r["seq_len"]) for r in data["rows"]}
    for tower, seq in (("text", 8), ("vision", None)):
        for batch in (1, 2):
            # the ONNX folder runs on torch and ort; the OpenVINO IR on openvino only
            expected = {("onnx", b, tower, batch, seq) for b in ("torch", "ort")}
            assert expected | {("ov8", "openvino", tower, batch, seq)} <= cases
    by = {(r["artifact"], r["backend"], r["tower"], r["batch"]): r for r in data["rows"]}
    assert by["onnx", "ort", "vision", 2]["cosine.image_embeds"] > 0.99999
    assert by["onnx", "ort", "text", 1]["cosine.text_embeds"] > 0.99999
    assert 0.5 < by["ov8", "openvino", "vision", 1]["cosine.image_embeds"] < 1.0  # int8: close, not equal
    assert by["onnx", "ort", "text", 1]["speedup_vs_torch"] > 0
    quality = {(q["artifact"], q["backend"]): q for q in data["quality"]}
    fp32, int8, reference = quality["onnx", "ort"], quality["ov8", "openvino"], quality["onnx", "torch"]
    assert fp32["pairs"] == len(CAPTIONS)
    for key in ("i2t_r1_vs_fp32", "i2t_r5_vs_fp32", "t2i_r1_vs_fp32", "zero_shot_agreement"):
        assert fp32[key] == 1.0 and 0 <= int8[key] <= 1.0
    assert fp32["image_cosine"] > 0.99999 and 0.5 < int8["image_cosine"] < 1.0
    for key in ("i2t_r1", "i2t_r5", "t2i_r1", "zero_shot_accuracy"):  # the true pairs: fp32 scores as PyTorch
        assert fp32[key] == reference[key]
    md = (out / "bench.md").read_text()
    assert "| tower |" in md and "top-1 agree" in md and "6 image-text pairs" in md
    assert (out / "bench.png").exists()


def test_bad_pairs_fail_before_any_worker(clip, tmp_path):
    onnx, _, pairs = clip
    lines = pairs.read_text().splitlines()
    cases = {
        "missing.jsonl": (lines[0].replace("photos/chelsea.png", "photos/nope.png"), "does not exist"),
        "nolabel.jsonl": (
            "\n".join([lines[0], json.dumps({"image": "photos/cat.png", "text": "x"})]),
            "have a label",
        ),
        "notext.jsonl": (json.dumps({"image": "photos/cat.png"}), "no 'text'"),
    }
    for name, (content, needle) in cases.items():
        (pairs.parent / name).write_text(content + "\n")
        result = run_cli(
            "bench", str(onnx), "--backend", "ort", "--seq-len", "8", "--eval-data", str(pairs.parent / name)
        )
        assert result.returncode == 2 and needle in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.stderr and "bench:" not in result.stderr  # no worker started
