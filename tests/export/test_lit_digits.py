"""Locked-tower tuning with real weights, end to end (``benchmarks/lit_digits.py``): the packaged
MiniLM locked as the text tower, a small ViT trained on real handwritten digits with captions,
exported to ONNX and OpenVINO INT8, and zero-shot classification of digits it never saw on each.
Chance is 0.1; the thresholds leave room for the shorter training here."""

from __future__ import annotations

import numpy as np
import pytest

from ..conftest import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lit(tmp_path_factory):
    from edgekit.benchmarks.lit_digits import make_model, tune, write_digits

    root = tmp_path_factory.mktemp("lit")
    train, held, images = write_digits(root / "data")
    student = tune(make_model(root / "model"), train, root / "student", steps=200)
    return student, train, held, images


def _accuracy(artifact, backend, held) -> tuple[float, list[str]]:
    import json

    from edgekit.runtimes.dual import ZeroShot

    records = [json.loads(line) for line in held.read_text().splitlines()]
    labels = sorted({r["label"] for r in records})
    zs = ZeroShot(artifact, backend)
    predicted = [
        row[0][0] for row in zs.classify([held.parent / r["image"] for r in records], zs.labels(labels))
    ]
    return float(np.mean([p == r["label"] for p, r in zip(predicted, records)])), predicted


def test_locked_minilm_tower_tunes_a_vision_tower_that_classifies_unseen_digits(lit, tmp_path):
    from safetensors.numpy import load_file

    from edgekit.assets import MINILM

    student, train, held, images = lit
    weights, minilm = (
        load_file(str(student / "model.safetensors")),
        load_file(str(MINILM.path() / "model.safetensors")),
    )
    locked = [k for k in weights if k.startswith("text_model.")]
    assert locked and all(np.array_equal(weights[k], minilm[k.removeprefix("text_model.")]) for k in locked)
    onnx, ov8 = tmp_path / "onnx", tmp_path / "ov8"
    assert run_cli("export", "--model", str(student), "--out", str(onnx)).returncode == 0
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(32):
        (calib / f"{i}.png").write_bytes((images / f"{i}.png").read_bytes())
    result = run_cli(
        "export", "--model", str(onnx), "--target", "openvino", "--precision", "int8", "--calib", str(calib),
        "--calib-text", str(train), "--calib-size", "32", "--out", str(ov8),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    fp32, fp32_labels = _accuracy(onnx, "ort", held)
    reference, reference_labels = _accuracy(onnx, "torch", held)
    int8, _ = _accuracy(ov8, "openvino", held)
    assert fp32 > 0.4, fp32  # ten classes: chance is 0.1 (0.81 after 500 steps, 0.44 after 150)
    assert np.mean([a == b for a, b in zip(fp32_labels, reference_labels)]) > 0.99 and fp32 == pytest.approx(
        reference, abs=0.01
    )
    assert int8 > fp32 - 0.05, (int8, fp32)
