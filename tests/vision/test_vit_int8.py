"""A vision encoder (a small ViT built from a transformers config) through the same export path:
fp32 validation, then INT8 calibrated on real photos (scikit-image) for ONNX Runtime and OpenVINO.
Random weights: this checks the image path end to end, not accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ..conftest import run_cli, save_photos


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    import torch
    from transformers import ViTConfig, ViTModel

    folder = tmp_path_factory.mktemp("vit")
    torch.manual_seed(0)
    config = ViTConfig(
        image_size=32,
        patch_size=8,
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=96,
    )
    ViTModel(config).eval().save_pretrained(str(folder))
    pre = {
        "do_resize": True,
        "size": {"height": 32, "width": 32},
        "resample": 2,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
        "image_processor_type": "ViTImageProcessor",
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(pre))
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = save_photos(tmp_path_factory.mktemp("photos"))
    (folder / "notes.jpg").write_text("this is not a picture")
    return folder


def test_vit_exports_and_validates(tiny_vit, tmp_path):
    out = tmp_path / "fp32"
    result = run_cli("export", "--model", str(tiny_vit), "--out", str(out))
    assert result.returncode == 0, result.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["export"]["task"] == "image-feature-extraction" and m["validation"]["passed"]
    assert m["export"]["inputs"] == [
        {"name": "pixel_values", "shape": ["batch", 3, 32, 32], "dtype": "float32"}
    ]
    assert [o["name"] for o in m["export"]["outputs"]] == ["last_hidden_state", "pooler_output"]

    from edgekit.runtimes import load_session

    x = (
        np.random.default_rng(1).uniform(-1, 1, size=(5, 3, 32, 32)).astype(np.float32)
    )  # a batch size it was not traced with
    got = load_session(out, "ort").run({"pixel_values": x})
    ref = load_session(out, "torch").run({"pixel_values": x})
    np.testing.assert_allclose(got["pooler_output"], ref["pooler_output"], atol=1e-4)


@pytest.mark.parametrize("target", ["ort", "openvino"])
def test_vit_int8_calibrated_on_real_photos(tiny_vit, photos, tmp_path, target):
    out = tmp_path / target
    result = run_cli(
        "export",
        "--model",
        str(tiny_vit),
        "--target",
        target,
        "--precision",
        "int8",
        "--calib",
        str(photos),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "notes.jpg" in result.stderr  # the unreadable file is named and skipped
    said = " ".join(result.stderr.split())  # rich wraps log lines
    assert said.count("skipped unreadable image") == 1  # once, though two steps read the folder
    assert "over 6 images" in result.stdout
    m = json.loads((out / "manifest.json").read_text())
    calib = m["export"]["quantization"]["calibration"]
    assert calib["kind"] == "image" and calib["samples"] == 6 and calib["skipped"][0].endswith("notes.jpg")
    quality = m["validation"]["quality"]
    assert quality["output"] == "pooler_output" and quality["texts"] == 6
    assert quality["mean_cosine"] > 0.95


def test_text_calibration_for_an_image_model_is_refused(tiny_vit, tmp_path):
    texts = tmp_path / "t.txt"
    texts.write_text("a line of text\n")
    result = run_cli(
        "export",
        "--model",
        str(tiny_vit),
        "--target",
        "ort",
        "--precision",
        "int8",
        "--calib",
        str(texts),
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1:] == [
        f"error: --calib '{texts}' holds no images but this model reads images; pass a folder of JPEG/PNG images"
    ]
    assert "Traceback" not in result.stderr and "Loading weights" not in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def labelled_photos(tmp_path_factory):
    """The real photos in two class subfolders (grey and colour), three each."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("labelled")
    source = save_photos(tmp_path_factory.mktemp("src"))
    for i, path in enumerate(sorted(source.glob("*.png"))):
        image = Image.open(path)
        for label, converted in (
            ("grey", image.convert("L").convert("RGB")),
            ("colour", image.convert("RGB")),
        ):
            (folder / label).mkdir(exist_ok=True)
            converted.resize((64, 64)).save(folder / label / f"{i}.png")
    return folder


def test_bench_times_images_and_scores_features_against_fp32(tiny_vit, labelled_photos, tmp_path):
    fp32 = tmp_path / "fp32"
    assert run_cli("export", "--model", str(tiny_vit), "--out", str(fp32)).returncode == 0
    out = tmp_path / "bench"
    args = ["--backend", "torch,ort", "--batch", "1,4", "--repeat", "3"]
    result = run_cli("bench", str(fp32), *args, "--eval-data", str(labelled_photos), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "torchao" not in result.stderr and "_pytree" not in result.stderr  # nor from the bench workers
    bench = json.loads((out / "bench.json").read_text())
    assert bench["images"] == f"the images of {labelled_photos}"
    rows = bench["rows"]
    assert {(r["backend"], r["batch"]) for r in rows} == {(b, n) for b in ("torch", "ort") for n in (1, 4)}
    for r in rows:
        assert r["p50_ms"] > 0 and r["seq_len"] is None
        if r["backend"] != "torch":  # the same fp32 graph: the same features as PyTorch's
            assert r["max_abs_diff.pooler_output"] < 1e-4 and r["cosine.last_hidden_state"] > 0.9999
    quality = {q["backend"]: q for q in bench["quality"]}
    assert all(q["images"] == 12 for q in quality.values())
    assert quality["torch"]["relative_accuracy"] == 1.0 and 0 <= quality["torch"]["accuracy"] <= 1
    assert (
        quality["ort"]["mean_cosine"] > 0.9999 and quality["ort"]["accuracy"] == quality["torch"]["accuracy"]
    )
    text = tmp_path / "t.txt"
    text.write_text("a line of text\n")
    bad = run_cli("bench", str(fp32), "--backend", "ort", "--eval-data", str(text))
    assert bad.returncode != 0 and "holds no images but this model reads images" in bad.stderr


def test_optimize_quantizes_a_vision_encoder_and_scores_probe_accuracy(tiny_vit, labelled_photos, tmp_path):
    out = tmp_path / "opt"
    args = [
        "--model",
        str(tiny_vit),
        "--task",
        "image-feature-extraction",
        "--eval-data",
        str(labelled_photos),
    ]
    args += ["--calib", str(labelled_photos), "--backends", "ort,openvino", "--precisions", "fp32,int8"]
    result = run_cli(
        "optimize", *args, "--batch", "4", "--repeat", "3", "--max-drop", "0.5", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((out / "results.json").read_text())
    cells = {c["cell"]: c for c in results["cells"]}
    assert all(c["state"] == "ok" for c in cells.values()), [c.get("error") for c in cells.values()]
    assert set(cells) == {"teacher torch fp32"} | {
        f"teacher {b} {p}" for b in ("ort", "openvino") for p in ("fp32", "int8")
    }
    assert (
        results["case"] == {"batch": 4}
        and "features of the labelled --eval-data images" in results["quality_metric"]
    )
    for c in cells.values():
        assert c["p50_ms"] > 0 and 0 <= c["accuracy"] <= 1
    assert cells["teacher ort fp32"]["relative_quality"] == pytest.approx(1.0)
    assert (out / "best-ort" / "manifest.json").is_file() and "images/s" in (out / "report.md").read_text()
    wrong = run_cli(
        "optimize", *args[:4], "--eval-data", str(tmp_path / "t.txt"), "--out", str(tmp_path / "o")
    )
    assert wrong.returncode != 0
