"""Image-text dual encoders (CLIP, Chinese CLIP, SigLIP, a vision-text dual encoder), tiny and
random: both towers exported and validated on every CPU target, INT8 calibrated per modality
(real photos from scikit-image for the vision tower, real sentences for the text tower), and
zero-shot scores from the artifact equal to PyTorch's. Random weights: this checks the path, not
accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ..conftest import run_cli, save_photos, write_tokenizer

TEXT = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4)
VISION = dict(
    hidden_size=32,
    intermediate_size=48,
    num_hidden_layers=2,
    num_attention_heads=4,
    image_size=32,
    patch_size=8,
)
PREPROCESSOR = {
    "do_resize": True,
    "size": {"height": 32, "width": 32},
    "resample": 3,
    "do_rescale": True,
    "rescale_factor": 1 / 255,
    "do_normalize": True,
    "image_mean": [0.481, 0.458, 0.408],
    "image_std": [0.269, 0.261, 0.276],
}
LABELS = ["a photo of a cat", "a cup of coffee", "a rocket on its launch pad", "a man in a space suit"]


def make_dual(folder, family: str, seed: int = 0):
    import torch
    import transformers

    bert_inputs = ["input_ids", "token_type_ids", "attention_mask"]
    names = (
        bert_inputs
        if family in ("chinese_clip", "vision-text-dual-encoder")
        else ["input_ids", "attention_mask"]
    )
    folder.mkdir(parents=True)
    vocab = write_tokenizer(folder, names)
    torch.manual_seed(seed)
    if family == "clip":
        config = transformers.CLIPConfig(
            text_config={
                **TEXT,
                "vocab_size": vocab,
                "max_position_embeddings": 64,
                "eos_token_id": 3,
                "pad_token_id": 0,
            },
            vision_config=VISION,
            projection_dim=16,
        )
    elif family == "chinese_clip":
        config = transformers.ChineseCLIPConfig(
            text_config={**TEXT, "vocab_size": vocab, "max_position_embeddings": 64},
            vision_config=VISION,
            projection_dim=16,
        )
    elif family == "siglip":
        config = transformers.SiglipConfig(
            text_config={**TEXT, "vocab_size": vocab, "max_position_embeddings": 16}, vision_config=VISION
        )
    else:
        config = transformers.VisionTextDualEncoderConfig.from_vision_text_configs(
            transformers.ViTConfig(**VISION),
            transformers.BertConfig(**TEXT, vocab_size=vocab, max_position_embeddings=64),
            projection_dim=16,
        )
    transformers.AutoModel.from_config(config).eval().save_pretrained(str(folder))
    (folder / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    return folder


FAMILIES = ["clip", "chinese_clip", "siglip", "vision-text-dual-encoder"]


@pytest.fixture(scope="module")
def duals(tmp_path_factory):
    root = tmp_path_factory.mktemp("duals")
    return {family: make_dual(root / family, family) for family in FAMILIES}


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return save_photos(tmp_path_factory.mktemp("photos"))


def _torch_scores(model_dir, images, labels):
    """Zero-shot probabilities from transformers itself: the model's own forward and preprocessing."""
    import torch
    import transformers
    from PIL import Image

    from edgekit.calibration.images import ImagePreprocessor

    model = transformers.AutoModel.from_pretrained(str(model_dir)).eval()
    tok = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    siglip = model.config.model_type == "siglip"
    enc = tok(
        labels,
        padding="max_length" if siglip else True,
        truncation=True,
        max_length=16 if siglip else 64,
        return_tensors="pt",
    )
    pre = ImagePreprocessor.from_model(model_dir)
    pixels = torch.from_numpy(np.stack([pre(Image.open(p)) for p in images]))
    with torch.no_grad():
        out = model(
            **{k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")},
            pixel_values=pixels,
        )
    logits = out.logits_per_image
    return (torch.sigmoid(logits) if siglip else logits.softmax(-1)).numpy()


@pytest.mark.parametrize("family", FAMILIES)
def test_both_towers_export_validate_and_score_like_transformers(duals, photos, tmp_path, family):
    out = tmp_path / "onnx"
    result = run_cli("export", "--model", str(duals[family]), "--out", str(out))
    assert result.returncode == 0, result.stderr
    m = json.loads((out / "manifest.json").read_text())
    export = m["export"]
    assert export["task"] == "zero-shot-image-classification"
    assert export["model_files"] == {"text": "text/model.onnx", "vision": "vision/model.onnx"}
    assert export["scoring"] == ("sigmoid" if family == "siglip" else "softmax")
    assert (export["logit_bias"] is not None) == (family == "siglip")
    for tower in ("text", "vision"):
        assert m["validation"]["towers"][tower]["passed"]
        assert export["towers"][tower]["outputs"][0]["shape"][1] == export["embed_dim"]

    from edgekit.runtimes.dual import ZeroShot

    images = sorted(photos.glob("*.png"))
    expected = _torch_scores(duals[family], images, LABELS)
    for backend in ("ort", "torch"):
        zs = ZeroShot(out, backend)
        got = zs.scores(zs.embed_images(images), zs.embed_texts(LABELS))
        np.testing.assert_allclose(got, expected, atol=2e-5)


@pytest.mark.parametrize("target", ["ort", "openvino"])
def test_every_target_takes_both_towers(duals, photos, tmp_path, target):
    out = tmp_path / target
    result = run_cli("export", "--model", str(duals["clip"]), "--target", target, "--out", str(out))
    assert result.returncode == 0, result.stderr
    export = json.loads((out / "manifest.json").read_text())["export"]
    suffix = ".xml" if target == "openvino" else ".onnx"
    assert all(f.endswith(suffix) and (out / f).is_file() for f in export["model_files"].values())
    from edgekit.runtimes.dual import ZeroShot

    images = sorted(photos.glob("*.png"))
    got = ZeroShot(out).classify(images, LABELS)
    expected = _torch_scores(duals["clip"], images, LABELS)
    for row, probs in zip(got, expected):
        assert row[0][0] == LABELS[int(np.argmax(probs))]
        assert abs(row[0][1] - probs.max()) < 1e-4


@pytest.mark.parametrize("target", ["ort", "openvino"])
def test_int8_calibrates_each_tower_on_its_own_modality(duals, photos, tmp_path, target):
    from edgekit.calibration._sample import SAMPLE_PARAGRAPHS

    captions = tmp_path / "captions.txt"
    captions.write_text("\n".join(SAMPLE_PARAGRAPHS))
    out = tmp_path / f"{target}-int8"
    args = ["export", "--model", str(duals["clip"]), "--target", target, "--precision", "int8"]
    result = run_cli(*args, "--calib", str(photos), "--calib-text", str(captions), "--out", str(out))
    assert result.returncode == 0, result.stderr
    towers = json.loads((out / "manifest.json").read_text())["export"]["towers"]
    assert towers["vision"]["quantization"]["calibration"]["kind"] == "image"
    assert towers["text"]["quantization"]["calibration"]["kind"] == "text"
    validation = json.loads((out / "manifest.json").read_text())["validation"]["towers"]
    for tower in ("text", "vision"):  # embeddings of held-out inputs against fp32 PyTorch
        assert validation[tower]["quality"]["mean_cosine"] > 0.95, (tower, validation[tower]["quality"])
    from edgekit.runtimes.dual import ZeroShot

    images = sorted(photos.glob("*.png"))
    got = np.array([[p for _, p in sorted(row)] for row in ZeroShot(out).classify(images, LABELS)])
    expected = _torch_scores(duals["clip"], images, LABELS)
    order = np.argsort(LABELS)
    assert np.abs(got - expected[:, order]).max() < 0.15  # random tiny towers: near-uniform scores move


PHOTO_CAPTIONS = {
    "chelsea": "a tabby cat with orange fur",
    "coffee": "a cup of coffee on a saucer",
    "astronaut": "an astronaut in a white space suit",
    "rocket": "a rocket on its launch pad",
    "cat": "a small cat looking up",
    "camera": "a man behind a camera on a tripod",
}


def test_int8_with_image_text_pairs_is_judged_on_zero_shot_agreement(duals, photos, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(
        "".join(
            json.dumps({"image": str(photos / f"{k}.png"), "text": v}) + "\n"
            for k, v in PHOTO_CAPTIONS.items()
        )
    )
    args = ["export", "--model", str(duals["clip"]), "--target", "ort", "--precision", "int8"]
    args += ["--calib", str(photos), "--calib-text", str(pairs), "--eval-data", str(pairs)]
    out = tmp_path / "int8"
    result = run_cli(*args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("zero-shot top-1 agreement") == 2
    validation = json.loads((out / "manifest.json").read_text())["validation"]["towers"]
    for tower in ("text", "vision"):  # each tower against fp32 with the other held at fp32
        q = validation[tower]["quality"]
        assert q["eval_data"] == "6 image-text pairs" and q["drop"] == pytest.approx(
            1 - q["zero_shot_agreement"]
        )
    strict = run_cli(
        *args, "--max-drop", "0.001", "--max-float-nodes", "2", "--out", str(tmp_path / "strict")
    )
    if strict.returncode == 0:  # the guard met agreement 1.0, keeping at most two nodes in float
        validation = json.loads((tmp_path / "strict" / "manifest.json").read_text())["validation"]["towers"]
        assert all(validation[t]["quality"]["zero_shot_agreement"] == 1.0 for t in ("text", "vision"))
    else:
        assert "cannot meet --max-drop 0.001" in strict.stderr and "Traceback" not in strict.stderr
        assert not (tmp_path / "strict").exists()


def test_int8_without_text_calibration_is_refused_first(duals, photos, tmp_path):
    result = run_cli(
        "export",
        "--model",
        str(duals["clip"]),
        "--precision",
        "int8",
        "--calib",
        str(photos),
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode != 0 and "--calib-text" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_zero_shot_command_labels_ranks_and_reuses_saved_label_embeddings(duals, photos, tmp_path):
    out = tmp_path / "clip"
    assert run_cli("export", "--model", str(duals["clip"]), "--out", str(out)).returncode == 0
    cat = photos / "chelsea.png"
    labels = ",".join(LABELS)
    first = run_cli(
        "zero-shot",
        str(out),
        "--image",
        str(cat),
        "--labels",
        labels,
        "--save-labels",
        str(tmp_path / "l.npz"),
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines()[0].startswith(f"wrote {tmp_path / 'l.npz'}")
    line = first.stdout.splitlines()[-1]
    assert line.startswith(f"{cat}: ") and all(label in line for label in LABELS)
    probs = [float(part.rsplit(" ", 1)[1]) for part in line.split(": ", 1)[1].split(", ")]
    assert probs == sorted(probs, reverse=True) and abs(sum(probs) - 1) < 2e-3
    again = run_cli("zero-shot", str(out), "--image", str(cat), "--label-embeddings", str(tmp_path / "l.npz"))
    assert again.returncode == 0 and again.stdout.splitlines()[-1] == line
    ranked = run_cli("zero-shot", str(out), "--images", str(photos), "--rank", "a photo of a cat")
    assert ranked.returncode == 0 and len(ranked.stdout.splitlines()) == 6
    scores = [float(row.split()[0]) for row in ranked.stdout.splitlines()]
    assert scores == sorted(scores, reverse=True)
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    result = run_cli("zero-shot", str(out), "--image", str(bad), "--labels", labels)
    assert result.returncode != 0 and "cannot read image" in result.stderr and str(bad) in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_zero_shot_and_calibration_options_are_one_line_and_write_nothing(duals, photos, tmp_path):
    from ..test_cli_errors import _assert_clean_failure

    out = tmp_path / "clip"
    assert run_cli("export", "--model", str(duals["clip"]), "--out", str(out)).returncode == 0
    keep = tmp_path / "labels.npz"
    keep.write_bytes(b"mine")
    cat = str(photos / "chelsea.png")
    cases = [
        (
            ["zero-shot", str(out), "--image", cat, "--labels", "a,b", "--save-labels", str(keep)],
            "already exists",
        ),
        (
            [
                "zero-shot",
                str(out),
                "--image",
                cat,
                "--labels",
                "a,b",
                "--save-labels",
                str(tmp_path / "l.txt"),
            ],
            ".npz",
        ),
        (
            ["zero-shot", str(out), "--image", cat, "--label-embeddings", str(keep)],
            "not a label-embeddings file",
        ),
        (["zero-shot", str(out), "--image", cat, "--labels", "a", "--rank", "a cat"], "pass one of"),
        (["zero-shot", str(out), "--image", cat, "--labels", "a", "--top", "0"], "--top"),
        (
            ["export", "--model", str(duals["clip"]), "--calib-text", cat, "--out", str(tmp_path / "o")],
            "--calib-text",
        ),
        (
            ["export", "--model", str(duals["clip"]), "--precision", "int8", "--calib", str(photos)]
            + ["--calib-text", str(photos), "--out", str(tmp_path / "o")],
            "holds images",
        ),
    ]
    before = sorted(p.name for p in tmp_path.iterdir())
    for args, needle in cases:
        _assert_clean_failure(run_cli(*args), needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == before and keep.read_bytes() == b"mine"
