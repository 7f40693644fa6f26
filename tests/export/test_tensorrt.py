"""TensorRT: profiles, the build command, the implicit-INT8 calibration cache format, the TensorRT
code type-checked against tensorrt-stubs, and the --target trt folders for real MiniLM (their Q/DQ
and fp16 graphs run on ONNX Runtime for parity). Engine builds run only where TensorRT and a GPU are."""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgekit.export.tensorrt import calibration_cache_text, profiles, read_calibration_cache, tensorrt_status, trtexec_commands, version_code

from ..conftest import REPO, run_cli

TRT_READY, TRT_WHY = tensorrt_status()


def test_profiles_cover_every_dynamic_input_including_the_kv_cache():
    inputs = [
        {"name": "input_ids", "shape": ["batch", "sequence"]},
        {"name": "attention_mask", "shape": ["batch", "total_sequence"]},
        {"name": "past_key_values.0.key", "shape": ["batch", 3, "past_sequence", 64]},
    ]
    p = profiles(inputs, max_batch=4, opt_batch=2, opt_seq=128, max_seq=512)
    assert p["input_ids"] == {"min": [1, 1], "opt": [2, 128], "max": [4, 512]}
    assert p["attention_mask"] == {"min": [1, 1], "opt": [2, 128], "max": [4, 512]}
    assert p["past_key_values.0.key"] == {"min": [1, 3, 0, 64], "opt": [2, 3, 128, 64], "max": [4, 3, 511, 64]}


def test_trtexec_commands():
    p = profiles([{"name": "input_ids", "shape": ["batch", "sequence"]}], 16, 8, 128, 512)
    cmds = trtexec_commands("int8", p)
    first = next(iter(cmds.values()))
    assert "--minShapes=input_ids:1x1" in first and "--optShapes=input_ids:8x128" in first and "--maxShapes=input_ids:16x512" in first
    assert "--stronglyTyped" in first and "--timingCacheFile=timing.cache" in first
    implicit = [c for label, c in cmds.items() if "implicit" in label][0]
    assert "--onnx=model.fp32.onnx" in implicit and "--calib=calibration.cache" in implicit and "--int8" in implicit


def test_calibration_cache_format_by_hand():
    assert version_code((10, 3, 0)) == 100300 and version_code((8, 6, 1)) == 8601
    text = calibration_cache_text({"input": 127.0, "hidden": 2.54, "dead": 0.0}, (10, 3, 0))
    lines = text.splitlines()
    assert lines[0] == "TRT-100300-EntropyCalibration2"
    assert lines[1] == "input: 3f800000"  # scale 1.0 as a big-endian float32
    assert lines[2] == f"hidden: {struct.pack('>f', 0.02).hex()}"
    header, scales = read_calibration_cache(text)
    assert header == lines[0] and scales["hidden"] == pytest.approx(0.02) and scales["dead"] > 0


def _split_params(params: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for ch in params:
        depth += ch in "[(" and 1 or (ch in "])" and -1 or 0)
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + ([current] if current.strip() else [])


def _repair_stub_line(line: str) -> str:
    """tensorrt-stubs 10.13 has two kinds of invalid Python in its signatures: parameters named
    ``in`` (a keyword) and required parameters after defaulted ones. Rename / default them."""
    match = re.match(r"^(\s*def \w+\()(.*)(\)\s*->.*)$", line)
    if not match:
        return line
    params, seen_default = [], False
    for param in _split_params(match.group(2)):
        param = re.sub(r"^(\s*)in:", r"\1in_:", param)
        if "=" in param:
            seen_default = True
        elif seen_default and ":" in param:
            param += " = ..."
        params.append(param)
    return match.group(1) + ",".join(params) + match.group(3)


def test_tensorrt_code_type_checks_against_tensorrt_stubs(tmp_path):
    """mypy with the stubs on MYPYPATH (the stub wheel ships no py.typed; its signatures are
    repaired where they are not valid Python): edgekit's TensorRT code must type-check, and a
    deliberate misuse must not (proof the stubs are in force)."""
    import importlib.util

    site = Path(importlib.util.find_spec("tensorrt_stubs").submodule_search_locations[0]).parent
    stubs = tmp_path / "stubs"
    for name in ("tensorrt", "tensorrt_bindings"):
        shutil.copytree(site / name, stubs / name)
        for pyi in (stubs / name).glob("*.pyi"):
            pyi.write_text("\n".join(_repair_stub_line(line) for line in pyi.read_text().splitlines()) + "\n")
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nfollow_imports = silent\nwarn_unused_ignores = False\n[mypy-edgekit.*,onnxruntime.*]\nignore_missing_imports = True\n[mypy-tensorrt.*,tensorrt_bindings.*,tensorrt_libs.*]\nignore_errors = True\nignore_missing_imports = True\n")
    env = {"MYPYPATH": str(stubs), "PATH": str(Path(sys.executable).parent)}
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir", str(tmp_path / ".mypy_cache")]
    ok = subprocess.run([*cmd, str(REPO / "export" / "tensorrt.py"), str(REPO / "runtimes" / "trt_backend.py")], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad.py"
    bad.write_text("import tensorrt as trt\nbuilder = trt.Builder(trt.Logger(trt.Logger.WARNING))\nbuilder.build_engine_with_typo(1)\n")
    wrong = subprocess.run([*cmd, str(bad)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert wrong.returncode == 1 and "build_engine_with_typo" in wrong.stdout


@pytest.fixture(scope="module")
def trt_int8(minilm_artifact, tmp_path_factory):
    from edgekit.assets import lee_background

    out = tmp_path_factory.mktemp("trt") / "trt8"
    result = run_cli("export", "--model", str(minilm_artifact), "--target", "trt", "--precision", "int8", "--calib", str(lee_background()), "--calib-size", "32", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out, result


def test_trt_int8_folder_holds_explicit_symmetric_qdq_and_a_calibration_cache(trt_int8):
    out, result = trt_int8
    m = json.loads((out / "manifest.json").read_text())
    trt = m["export"]["tensorrt"]
    assert set(json.loads((out / "trt_profiles.json").read_text())) == {"input_ids", "token_type_ids", "attention_mask"}
    assert (out / "build_trt.sh").read_text().count("trtexec") == 3
    if not TRT_READY:
        assert trt["engine_built"] is False and trt["not_built_because"] == TRT_WHY
        assert "TensorRT engine not built" in result.stdout and "edgekit build" in result.stdout
    model = onnx.load(str(out / "model.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for q in (n for n in model.graph.node if n.op_type == "QuantizeLinear"):
        assert inits[q.input[2]].dtype == np.int8 and not inits[q.input[2]].any()  # symmetric int8 activations
    assert m["validation"]["quality"]["mean_cosine"] > 0.99  # the Q/DQ graph on ONNX Runtime vs PyTorch
    header, scales = read_calibration_cache((out / "calibration.cache").read_text())
    assert header.startswith("TRT-100300-") and len(scales) == m["export"]["quantization"]["implicit_int8"]["tensors"] > 100
    fp32_names = {o for n in onnx.load(str(out / "model.fp32.onnx")).graph.node for o in n.output}
    assert set(scales) <= fp32_names and all(s > 0 for s in scales.values())


def test_build_refuses_clearly_without_tensorrt(trt_int8):
    if TRT_READY:
        pytest.skip("TensorRT and a GPU are present: the engine test below runs instead")
    result = run_cli("build", str(trt_int8[0]))
    assert result.returncode != 0 and "cannot build the TensorRT engine here" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(not TRT_READY, reason=f"TensorRT engine build needs TensorRT and a GPU: {TRT_WHY}")
def test_engine_builds_and_matches_onnx_runtime(trt_int8, minilm_dir):  # pragma: no cover - runs on a GPU machine only
    from transformers import AutoTokenizer

    from edgekit.runtimes import load_session

    out, _ = trt_int8
    result = run_cli("build", str(out))
    assert result.returncode == 0, result.stderr
    tok = AutoTokenizer.from_pretrained(str(minilm_dir))
    enc = tok(["TensorRT on a Jetson."], padding="max_length", max_length=128, return_tensors="np")
    feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
    a = load_session(out, "trt").run(feeds)["sentence_embedding"]
    b = load_session(out, "ort").run(feeds)["sentence_embedding"]
    assert float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b)) > 0.99


def test_trt_fp16_graph_is_fp16_and_faithful(minilm_artifact, tmp_path):
    out = tmp_path / "trt16"
    result = run_cli("export", "--model", str(minilm_artifact), "--target", "trt", "--precision", "fp16", "--out", str(out))
    assert result.returncode == 0, result.stderr
    model = onnx.load(str(out / "model.onnx"))
    weights = [i for i in model.graph.initializer if len(i.dims) == 2 and i.data_type != onnx.TensorProto.INT64]  # not position ids
    assert len(weights) > 36 and all(w.data_type == onnx.TensorProto.FLOAT16 for w in weights)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert json.loads((out / "manifest.json").read_text())["validation"]["quality"]["mean_cosine"] > 0.9999
