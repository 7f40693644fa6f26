"""Image-text distillation (``--task image-text``) of tiny random CLIP-family teachers on real
images: scikit-learn's handwritten digits, each captioned with its digit. Through the CLI: the
loss goes down, a locked tower stays the teacher's, the student exports and validates like any
image-text model, its report scores it against the teacher on held-out pairs, bad input fails in
one line. Random teachers: this checks the training path, not accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ...conftest import run_cli
from ...export.test_dual import make_dual

WORDS = "zero one two three four five six seven eight nine".split()


def write_digit_pairs(folder, n: int):
    """``n`` real 8x8 digits (upscaled to 32x32 RGB) with captions and labels, as a .jsonl of pairs."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    (folder / "digits").mkdir(parents=True)
    lines = []
    for i in range(n):
        pixels = (digits.images[i] * 16).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).resize((32, 32)).convert("RGB").save(folder / "digits" / f"{i}.png")
        word = WORDS[digits.target[i]]
        lines.append(json.dumps({"image": f"digits/{i}.png", "text": f"a handwritten {word}", "label": word}))
    (folder / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    return folder / "pairs.jsonl"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("image-text")
    return make_dual(root / "clip", "clip"), write_digit_pairs(root, 48)


def _args(teacher, data, out, *extra):
    return [
        "distill", "--teacher", str(teacher), "--task", "image-text", "--data", str(data),
        "--student-layers", "1", "--batch-size", "8", "--eval-fraction", "0.25", "--out", str(out), *extra,
    ]  # fmt: skip


def _weights(folder):
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def test_contrastive_losses_by_hand():
    import torch

    from edgekit.compress.distill.image_text import _contrastive

    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    ce = -np.log(np.exp(2) / (np.exp(2) + 1))  # each row and column: the pair against one other
    assert float(_contrastive(logits, "softmax")) == pytest.approx(ce, rel=1e-6)
    # sigmoid: per image, -log s(2) for its pair and -log s(-0) for the other text, summed, over 2 images
    expected = 2 * (-np.log(1 / (1 + np.exp(-2))) - np.log(0.5)) / 2
    assert float(_contrastive(logits, "sigmoid")) == pytest.approx(expected, rel=1e-6)


def test_distillation_lowers_the_loss_keeps_the_locked_tower_and_exports(setup, tmp_path):
    teacher, data = setup
    out = tmp_path / "student"
    extra = ["--max-steps", "30", "--lr", "1e-3", "--a2", "0.5", "--momentum-teacher", "0.99"]
    result = run_cli(
        *_args(teacher, data, out, *extra, "--freeze", "vision_model.*", "--freeze", "visual_projection.*")
    )
    assert result.returncode == 0, result.stderr
    assert "image-to-text R@1" in result.stdout and "on 12 pairs" in result.stdout
    report = json.loads((out / "report.json").read_text())
    losses = [step["total"] for step in report["losses"]]
    assert len(losses) == 30 and np.mean(losses[-5:]) < np.mean(losses[:5])
    assert {"pred", "feature", "hidden", "momentum", "student"} <= set(report["losses"][0])
    student, source = _weights(out), _weights(teacher)
    locked = [k for k in student if k.startswith(("vision_model.", "visual_projection."))]
    assert locked and all(
        np.array_equal(student[k], source[k]) for k in locked
    )  # LiT: the image tower as it was
    assert not np.array_equal(student["text_projection.weight"], source["text_projection.weight"])  # trained
    assert "text_model.encoder.layers.1.mlp.fc1.weight" not in student  # one text layer of two kept
    assert report["student"]["image_cosine"] == pytest.approx(1.0, abs=1e-6)
    assert (
        0 <= report["zero_shot_agreement"] <= 1
        and report["student_parameters"] < report["teacher_parameters"]
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["distill"]["layer_map"] == {"text": [2], "vision": [1, 2]}
    assert manifest["distill"]["train_pairs"] == 36 and manifest["seed"] == 0
    exported = tmp_path / "onnx"
    result = run_cli("export", "--model", str(out), "--out", str(exported))
    assert result.returncode == 0, result.stderr
    assert json.loads((exported / "manifest.json").read_text())["export"]["model_files"] == {
        "text": "text/model.onnx",
        "vision": "vision/model.onnx",
    }


def test_siglip_trains_with_its_sigmoid_loss_and_shrinks_both_towers(tmp_path):
    teacher = make_dual(tmp_path / "siglip", "siglip")
    data = write_digit_pairs(tmp_path, 24)
    out = tmp_path / "student"
    result = run_cli(
        *_args(teacher, data, out, "--max-steps", "4", "--a2", "1", "--student-vision-layers", "1")
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    assert all(np.isfinite(step["student"]) for step in report["losses"])
    config = json.loads((out / "config.json").read_text())
    assert (
        config["text_config"]["num_hidden_layers"] == 1 and config["vision_config"]["num_hidden_layers"] == 1
    )


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["--student-hidden", "16"], "not available for image-text"),
        (["--w-attn", "1"], "attention-score loss"),
        (["--student-vision-layers", "5"], "has 2 layers"),
        (["--batch-size", "64"], "fewer than one batch"),
    ],
)
def test_bad_image_text_options_fail_in_one_line(setup, tmp_path, extra, needle):
    teacher, data = setup
    out = tmp_path / "student"
    result = run_cli(*_args(teacher, data, out, "--max-steps", "2", *extra))
    assert result.returncode == 2 and needle in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not out.exists() and not (tmp_path / "student.work").exists()


def test_resume_after_sigkill_equals_an_uninterrupted_run(setup, tmp_path):
    """The shared loop's checkpoints hold the image-text student and its momentum copy too."""
    import signal
    import subprocess
    import sys
    import time

    teacher, data = setup
    steps = [
        "--max-steps",
        "40",
        "--save-every",
        "4",
        "--lr",
        "1e-3",
        "--momentum-teacher",
        "0.99",
        "--a2",
        "0.5",
    ]
    whole = tmp_path / "whole"
    assert run_cli(*_args(teacher, data, whole, *steps)).returncode == 0
    cut = tmp_path / "cut"
    proc = subprocess.Popen([sys.executable, "-m", "edgekit", *_args(teacher, data, cut, *steps)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    checkpoint = tmp_path / "cut.work" / "checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if cut.exists():
        pytest.skip("the run finished before it could be killed")
    resumed = run_cli(*_args(teacher, data, cut, *steps, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    a, b = _weights(whole), _weights(cut)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_a_teacher_that_is_not_an_image_text_model_is_refused_before_loading(tiny_models, setup, tmp_path):
    _, data = setup
    result = run_cli(*_args(tiny_models("bert"), data, tmp_path / "student", "--max-steps", "2"))
    assert result.returncode == 2 and "model type 'bert' has no image-text" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "student.work").exists()


def test_a_given_student_is_trained_and_a_mismatched_one_refused(setup, tmp_path):
    teacher, data = setup
    first = tmp_path / "first"
    assert run_cli(*_args(teacher, data, first, "--max-steps", "2")).returncode == 0  # a 1-layer text tower
    again = tmp_path / "again"
    args = list(_args(teacher, data, again, "--max-steps", "3", "--student", str(first)))
    args.remove("--student-layers")
    args.remove("1")
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    manifest = json.loads((again / "manifest.json").read_text())["distill"]
    assert manifest["student"]["from"] == str(first) and manifest["layer_map"]["text"] == [2]
    other = make_dual(tmp_path / "siglip", "siglip")
    swap = {str(first): str(other), str(again): str(tmp_path / "x")}
    result = run_cli(*[swap.get(a, a) for a in args])
    assert result.returncode == 2 and "is a siglip model and the teacher a clip" in result.stderr, (
        result.stderr
    )
