"""INT8 on the real all-MiniLM-L6-v2 through the CLI: ONNX Runtime static and dynamic, OpenVINO
with NNCF, the calibration cache, and the accuracy guard (fitting, and failing cleanly)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ..conftest import int8_dot_products, run_cli


@pytest.fixture(scope="module")
def lee_calib(tmp_path_factory):
    from edgekit.assets import lee_background, read_latin1_lines

    path = tmp_path_factory.mktemp("calib") / "lee.txt"
    path.write_text("\n".join(read_latin1_lines(lee_background())))
    return path


@pytest.fixture(scope="module")
def eval_texts(tmp_path_factory):
    """Held-out text the calibration never saw: 40 BBC News documents."""
    from edgekit.assets import bbc_news

    files = sorted(bbc_news().glob("*/*.txt"))[::55][:40]
    path = tmp_path_factory.mktemp("eval") / "bbc.txt"
    path.write_text("\n".join(" ".join(f.read_text(encoding="latin-1").split()) for f in files))
    return path


@pytest.fixture(scope="module")
def ort_int8(minilm_artifact, lee_calib, tmp_path_factory, eval_texts):
    out = tmp_path_factory.mktemp("int8") / "ort8"
    result = run_cli(
        "export",
        "--model",
        str(minilm_artifact),
        "--target",
        "ort",
        "--precision",
        "int8",
        "--calib",
        str(lee_calib),
        "--calib-size",
        "64",
        "--eval-data",
        str(eval_texts),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    return out, result


def _manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def test_ort_static_int8_is_faithful_and_fused(ort_int8):
    out, result = ort_int8
    m = _manifest(out)
    q, quant = m["validation"]["quality"], m["export"]["quantization"]
    assert "mean cosine" in result.stdout
    assert q["mean_cosine"] >= 0.99 and q["texts"] == 40
    assert quant["graph"]["MatMulIntegerToFloat"] == 36 and quant["graph"]["int8_weight_tensors"] == 36
    assert quant["smooth_quant"]["activations"] > 0 and quant["method"]["name"] == "percentile"
    assert m["export"]["precision"] == "int8" and m["validation"]["fp32"]["passed"]
    assert not (out / "model.fp32.onnx").exists() and not (out / "model.smoothed.onnx").exists()


def test_int8_artifact_runs_through_the_session_interface(ort_int8, minilm_dir):
    from transformers import AutoTokenizer

    from edgekit.runtimes import load_session

    out, _ = ort_int8
    tok = AutoTokenizer.from_pretrained(str(minilm_dir))
    enc = tok(
        ["INT8 on a laptop CPU.", "Quantized sentence embeddings stay close to fp32."],
        padding=True,
        return_tensors="np",
    )
    feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
    got = load_session(out, "ort").run(feeds)["sentence_embedding"]
    ref = load_session(out, "torch").run(feeds)["sentence_embedding"]
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.98


def test_second_build_reuses_the_calibration_cache(ort_int8, minilm_artifact, lee_calib, tmp_path):
    out = tmp_path / "onnx8"
    result = run_cli(
        "export",
        "--model",
        str(minilm_artifact),
        "--target",
        "onnx",
        "--precision",
        "int8",
        "--calib",
        str(lee_calib),
        "--calib-size",
        "64",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    quant = _manifest(out)["export"]["quantization"]
    assert quant["ranges_from_cache"] is True
    assert (
        quant["graph"]["MatMulIntegerToFloat"] == 0 and quant["graph"]["DequantizeLinear"] > 0
    )  # plain Q/DQ for --target onnx


def test_dynamic_int8(minilm_artifact, tmp_path):
    out = tmp_path / "dyn"
    result = run_cli(
        "export",
        "--model",
        str(minilm_artifact),
        "--target",
        "ort",
        "--precision",
        "int8-dynamic",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    m = _manifest(out)
    assert (
        m["export"]["quantization"]["mode"] == "dynamic" and m["validation"]["quality"]["mean_cosine"] > 0.98
    )


def test_openvino_int8_runs_int8_kernels(minilm_artifact, lee_calib, tmp_path):
    out = tmp_path / "ov8"
    result = run_cli(
        "export",
        "--model",
        str(minilm_artifact),
        "--target",
        "openvino",
        "--precision",
        "int8",
        "--calib",
        str(lee_calib),
        "--calib-size",
        "32",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    m = _manifest(out)
    assert (
        m["export"]["quantization"]["int8_ops"].get("FullyConnected", 0) >= 30
    )  # the runtime precision of the linear layers is u8/i8
    # 0.9978 measured with int8 dot products (VNNI), 0.9949 without (AVX2 only)
    assert m["validation"]["quality"]["mean_cosine"] >= (0.995 if int8_dot_products() else 0.993)
    assert (out / "model.xml").is_file() and not (out / "model.int8.xml").exists()


def test_accuracy_guard_keeps_layers_in_float_until_it_fits(
    ort_int8, minilm_artifact, lee_calib, eval_texts, tmp_path
):
    first_drop = _manifest(ort_int8[0])["validation"]["quality"]["drop"]
    max_drop = first_drop * 0.8
    out = tmp_path / "guarded"
    result = run_cli(
        "export",
        "--model",
        str(minilm_artifact),
        "--target",
        "ort",
        "--precision",
        "int8",
        "--calib",
        str(lee_calib),
        "--calib-size",
        "64",
        "--eval-data",
        str(eval_texts),
        "--max-drop",
        f"{max_drop:.6f}",
        "--max-float-nodes",
        "36",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    quant = _manifest(out)["export"]["quantization"]
    assert quant["float_nodes"], "the guard should have kept at least one layer in float"
    assert quant["guard"]["tries"][0]["drop"] == pytest.approx(first_drop)
    assert quant["guard"]["tries"][-1]["drop"] <= max_drop
    assert quant["quantized_nodes"] == 36 - len(quant["float_nodes"])


def test_accuracy_guard_fails_cleanly_when_it_cannot_fit(minilm_artifact, lee_calib, eval_texts, tmp_path):
    out = tmp_path / "never"
    result = run_cli(
        "export",
        "--model",
        str(minilm_artifact),
        "--target",
        "ort",
        "--precision",
        "int8",
        "--calib",
        str(lee_calib),
        "--calib-size",
        "16",
        "--eval-data",
        str(eval_texts),
        "--max-drop",
        "0.000001",
        "--max-float-nodes",
        "1",
        "--out",
        str(out),
    )
    assert result.returncode == 3
    assert result.stderr.strip().splitlines()[-1].startswith("error: INT8 cannot meet --max-drop 1e-06")
    assert "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".never*"))
