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

from edgekit.errors import InputError
from edgekit.export.tensorrt import (
    calibration_cache_text,
    decoder_profiles,
    profiles,
    read_calibration_cache,
    trtexec_commands,
    version_code,
)
from edgekit.runtimes.trt_backend import pick_profile, tensorrt_status

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
    assert p["past_key_values.0.key"] == {
        "min": [1, 3, 0, 64],
        "opt": [2, 3, 128, 64],
        "max": [4, 3, 511, 64],
    }


def test_trtexec_commands():
    p = profiles([{"name": "input_ids", "shape": ["batch", "sequence"]}], 16, 8, 128, 512)
    cmds = trtexec_commands("int8", [{"name": "default", "shapes": p}])
    first = next(iter(cmds.values()))
    assert (
        "--minShapes=input_ids:1x1" in first
        and "--optShapes=input_ids:8x128" in first
        and "--maxShapes=input_ids:16x512" in first
    )
    assert "--stronglyTyped" in first and "--timingCacheFile=timing.cache" in first
    implicit = [c for label, c in cmds.items() if "implicit" in label][0]
    assert (
        "--onnx=model.fp32.onnx" in implicit
        and "--calib=calibration.cache" in implicit
        and "--int8" in implicit
    )


DECODER_INPUTS = [
    {"name": "input_ids", "shape": ["batch", "sequence"]},
    {"name": "attention_mask", "shape": ["batch", "total_sequence"]},
    {"name": "position_ids", "shape": ["batch", "sequence"]},
    {"name": "past_key_values.0.key", "shape": ["batch", 3, "past_sequence", 64]},
    {"name": "past_key_values.0.value", "shape": ["batch", 3, "past_sequence", 64]},
]


def test_decoder_profiles_decode_then_prefill_each_shape_consistent():
    decode, prefill = decoder_profiles(DECODER_INPUTS, max_batch=4, opt_context=128, max_seq=1024)
    assert (decode["name"], prefill["name"]) == ("decode", "prefill")
    d, p = decode["shapes"], prefill["shapes"]
    assert d["input_ids"] == {"min": [1, 1], "opt": [1, 1], "max": [4, 1]}
    assert d["past_key_values.0.key"] == {
        "min": [1, 3, 0, 64],
        "opt": [1, 3, 128, 64],
        "max": [4, 3, 1023, 64],
    }
    assert p["input_ids"] == {"min": [1, 1], "opt": [1, 128], "max": [4, 1024]}
    assert p["past_key_values.0.value"]["max"] == [4, 3, 0, 64]  # a prompt starts from an empty cache
    for shapes in (d, p):  # TensorRT checks total = past + new at min, opt and max
        for key in ("min", "opt", "max"):
            assert (
                shapes["attention_mask"][key][1]
                == shapes["past_key_values.0.key"][key][2] + shapes["input_ids"][key][1]
            )
    cmd = next(iter(trtexec_commands("fp16", [decode, prefill]).values()))
    assert [a for a in cmd if a.startswith("--profile=")] == ["--profile=0", "--profile=1"]
    after0 = cmd[cmd.index("--profile=0") + 1 : cmd.index("--profile=1")]
    assert [a.split("=")[0] for a in after0] == ["--minShapes", "--optShapes", "--maxShapes"]
    assert "--optShapes=input_ids:1x1,attention_mask:1x129" in " ".join(after0)


def test_a_session_picks_the_profile_that_holds_the_shapes():
    profile_list = decoder_profiles(DECODER_INPUTS, max_batch=2, opt_context=16, max_seq=64)
    ranges = [{n: (tuple(s["min"]), tuple(s["max"])) for n, s in p["shapes"].items()} for p in profile_list]

    def shapes(batch, new, past):
        return {
            "input_ids": (batch, new),
            "attention_mask": (batch, past + new),
            "position_ids": (batch, new),
            "past_key_values.0.key": (batch, 3, past, 64),
            "past_key_values.0.value": (batch, 3, past, 64),
        }

    assert pick_profile(ranges, shapes(1, 1, 40)) == 0  # a decode step
    assert pick_profile(ranges, shapes(2, 1, 0)) == 0  # the first step of two beams
    assert pick_profile(ranges, shapes(1, 20, 0)) == 1  # a prompt
    with pytest.raises(
        InputError, match=r"input_ids \[1, 80\].*fit none of the engine's optimization profiles"
    ):
        pick_profile(ranges, shapes(1, 80, 0))  # longer than --max-seq-len
    with pytest.raises(InputError, match="--max-batch"):
        pick_profile(ranges, shapes(3, 1, 5))


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
    config.write_text(
        "[mypy]\nfollow_imports = silent\nwarn_unused_ignores = False\n[mypy-edgekit.*,onnxruntime.*]\nignore_missing_imports = True\n[mypy-tensorrt.*,tensorrt_bindings.*,tensorrt_libs.*]\nignore_errors = True\nignore_missing_imports = True\n"
    )
    env = {"MYPYPATH": str(stubs), "PATH": str(Path(sys.executable).parent)}
    cmd = [
        sys.executable,
        "-m",
        "mypy",
        "--config-file",
        str(config),
        "--cache-dir",
        str(tmp_path / ".mypy_cache"),
    ]
    files = [
        REPO / "export" / "tensorrt.py",
        REPO / "export" / "targets" / "tensorrt.py",
        REPO / "runtimes" / "trt_backend.py",
    ]
    ok = subprocess.run([*cmd, *map(str, files)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import tensorrt as trt\nbuilder = trt.Builder(trt.Logger(trt.Logger.WARNING))\nbuilder.build_engine_with_typo(1)\n"
    )
    wrong = subprocess.run([*cmd, str(bad)], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert wrong.returncode == 1 and "build_engine_with_typo" in wrong.stdout


@pytest.fixture(scope="module")
def trt_int8(minilm_artifact, tmp_path_factory):
    from edgekit.assets import lee_background

    out = tmp_path_factory.mktemp("trt") / "trt8"
    result = run_cli(
        "export",
        "--model",
        str(minilm_artifact),
        "--target",
        "trt",
        "--precision",
        "int8",
        "--calib",
        str(lee_background()),
        "--calib-size",
        "32",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    return out, result


def test_trt_int8_folder_holds_explicit_symmetric_qdq_and_a_calibration_cache(trt_int8):
    out, result = trt_int8
    m = json.loads((out / "manifest.json").read_text())
    trt = m["export"]["tensorrt"]
    (profile,) = json.loads((out / "trt_profiles.json").read_text())
    assert profile["name"] == "default" and set(profile["shapes"]) == {
        "input_ids",
        "token_type_ids",
        "attention_mask",
    }
    assert (out / "build_trt.sh").read_text().count("trtexec") == 3
    if not TRT_READY:
        assert trt["engine_built"] is False and trt["not_built_because"] == TRT_WHY
        assert "TensorRT engine not built" in result.stdout and "edgekit build" in result.stdout
    model = onnx.load(str(out / "model.onnx"))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for q in (n for n in model.graph.node if n.op_type == "QuantizeLinear"):
        assert (
            inits[q.input[2]].dtype == np.int8 and not inits[q.input[2]].any()
        )  # symmetric int8 activations
    assert m["validation"]["quality"]["mean_cosine"] > 0.99  # the Q/DQ graph on ONNX Runtime vs PyTorch
    header, scales = read_calibration_cache((out / "calibration.cache").read_text())
    assert (
        header.startswith("TRT-100300-")
        and len(scales) == m["export"]["quantization"]["implicit_int8"]["tensors"] > 100
    )
    fp32_names = {o for n in onnx.load(str(out / "model.fp32.onnx")).graph.node for o in n.output}
    assert set(scales) <= fp32_names and all(s > 0 for s in scales.values())


def test_build_refuses_clearly_without_tensorrt(trt_int8):
    if TRT_READY:
        pytest.skip("TensorRT and a GPU are present: the engine test below runs instead")
    result = run_cli("build", str(trt_int8[0]))
    assert (
        result.returncode != 0
        and "cannot build the TensorRT engine here" in result.stderr
        and "Traceback" not in result.stderr
    )


@pytest.mark.skipif(not TRT_READY, reason=f"TensorRT engine build needs TensorRT and a GPU: {TRT_WHY}")
def test_engine_builds_and_matches_onnx_runtime(
    trt_int8, minilm_dir
):  # pragma: no cover - runs on a GPU machine only
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
    result = run_cli(
        "export", "--model", str(minilm_artifact), "--target", "trt", "--precision", "fp16", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    model = onnx.load(str(out / "model.onnx"))
    weights = [
        i for i in model.graph.initializer if len(i.dims) == 2 and i.data_type != onnx.TensorProto.INT64
    ]  # not position ids
    assert len(weights) > 36 and all(w.data_type == onnx.TensorProto.FLOAT16 for w in weights)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert json.loads((out / "manifest.json").read_text())["validation"]["quality"]["mean_cosine"] > 0.9999


@pytest.fixture(scope="module")
def trt_decoder(tmp_path_factory):
    from .test_decoder_families import make_tiny_decoder

    root = tmp_path_factory.mktemp("trt-dec")
    src = make_tiny_decoder(root / "src", "llama")
    out = root / "trt16"
    result = run_cli(
        "export",
        "--model",
        str(src),
        "--target",
        "trt",
        "--precision",
        "fp16",
        "--max-seq-len",
        "96",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    return src, out, result


def test_trt_fp16_decoder_has_decode_and_prefill_profiles_and_matches_transformers(trt_decoder):
    src, out, result = trt_decoder
    m = json.loads((out / "manifest.json").read_text())
    trt = m["export"]["tensorrt"]
    decode, prefill = json.loads((out / "trt_profiles.json").read_text())
    past = [i["name"] for i in m["export"]["inputs"] if i["name"].startswith("past_key_values.")]
    assert len(past) == 4 and set(past) <= set(decode["shapes"]) and decode["shapes"][past[0]]["max"][2] == 95
    assert prefill["shapes"]["input_ids"]["max"][1] == 96 and trt["max_seq"] == 96
    assert (out / "build_trt.sh").read_text().count(
        "--profile=1"
    ) == 2  # both trtexec lines carry both profiles
    if not TRT_READY:
        assert trt["engine_built"] is False and "TensorRT engine not built" in result.stdout
    model = onnx.load(str(out / "model.onnx"))
    matrices = [i for i in model.graph.initializer if len(i.dims) == 2]
    assert matrices and all(w.data_type == onnx.TensorProto.FLOAT16 for w in matrices)
    ops = {n.op_type for n in model.graph.node}
    kept = {n.op_type for n in model.graph.node if n.op_type in ("Cos", "Sin", "Pow", "ReduceMean")}
    assert kept == {"Cos", "Sin", "Pow", "ReduceMean"} and "Cast" in ops
    # the fp16 graph on ONNX Runtime: logits within the fp16 tolerance, greedy tokens identical to transformers fp32
    assert m["validation"]["passed"] and m["validation"]["max_abs_diff"]["logits"] < 0.25
    assert m["validation"]["greedy_generation"]["identical"], m["validation"]["greedy_generation"]
    gen = run_cli("generate", str(out), "--prompt", "Edge devices", "--max-new-tokens", "4")
    assert gen.returncode == 0, gen.stderr
    if not TRT_READY:  # before 'edgekit build': one line says the engine is missing and how to get it
        no_engine = run_cli("generate", str(out), "--backend", "trt", "--prompt", "Edge devices")
        assert (
            no_engine.returncode != 0
            and "holds no TensorRT engine yet" in no_engine.stderr
            and "edgekit build" in no_engine.stderr
        )
        assert len(no_engine.stderr.strip().splitlines()) == 1


def test_trt_decoder_bad_options_one_line_nothing_written(trt_decoder, tmp_path):
    src, _, _ = trt_decoder
    for args, words in (
        (["--target", "trt", "--precision", "int8"], "is not available for decoders"),
        (["--target", "onnx", "--max-seq-len", "64"], "applies only to --target trt"),
        (["--target", "trt", "--precision", "fp16", "--max-seq-len", "1"], "must be at least 2"),
    ):
        result = run_cli("export", "--model", str(src), *args, "--out", str(tmp_path / "x"))
        assert result.returncode != 0 and words in result.stderr and "Traceback" not in result.stderr, (
            result.stderr
        )
        assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "x").exists()


@pytest.mark.skipif(not TRT_READY, reason=f"TensorRT engine build needs TensorRT and a GPU: {TRT_WHY}")
def test_decoder_engine_generates_what_onnx_runtime_does(
    trt_decoder,
):  # pragma: no cover - runs on a GPU machine only
    _, out, _ = trt_decoder
    assert run_cli("build", str(out)).returncode == 0
    trt_run = run_cli(
        "generate", str(out), "--backend", "trt", "--prompt", "Edge devices", "--max-new-tokens", "8"
    )
    ort_run = run_cli(
        "generate", str(out), "--backend", "ort", "--prompt", "Edge devices", "--max-new-tokens", "8"
    )
    assert trt_run.returncode == 0, trt_run.stderr
    assert trt_run.stdout.strip() == ort_run.stdout.strip()


@pytest.fixture(scope="module")
def trt_dual(tmp_path_factory):
    """A tiny random CLIP for --target trt fp16: a graph, profiles and a build script per tower."""
    from .test_dual import make_dual

    root = tmp_path_factory.mktemp("trt-dual")
    out = root / "trt"
    result = run_cli("export", "--model", str(make_dual(root / "clip", "clip")), "--target", "trt", "--precision", "fp16", "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


def test_trt_image_text_towers_each_get_a_graph_profiles_and_a_build_script(trt_dual):
    from edgekit.runtimes.trt_backend import engine_path

    export = json.loads((trt_dual / "manifest.json").read_text())["export"]
    assert export["tensorrt"]["engine_built"] is TRT_READY
    for tower, axis in (("text", "input_ids"), ("vision", "pixel_values")):
        folder = trt_dual / tower
        assert {"model.onnx", "trt_profiles.json", "build_trt.sh"} <= {p.name for p in folder.iterdir()}
        section = export["towers"][tower]["tensorrt"]
        assert section["precision"] == "fp16" and axis in section["profiles"][0]["shapes"]
        assert engine_path(trt_dual, export["model_files"][tower]) == folder / "model.engine"
    with pytest.raises(InputError, match="share one folder"):
        engine_path(trt_dual, "decoder.onnx")  # two graphs in one folder: no engine each


def test_build_of_image_text_towers_refuses_clearly_without_tensorrt(trt_dual):
    if TRT_READY:
        pytest.skip("TensorRT and a GPU are present: the engines are built instead")
    result = run_cli("build", str(trt_dual))
    assert result.returncode != 0 and "cannot build the TensorRT engine here" in result.stderr
    assert "Traceback" not in result.stderr and not (trt_dual / "text" / "model.engine").exists()


@pytest.mark.skipif(not TRT_READY, reason=f"TensorRT engine build needs TensorRT and a GPU: {TRT_WHY}")
def test_image_text_engines_embed_like_onnx_runtime(trt_dual):  # pragma: no cover - GPU machines only
    from PIL import Image

    from edgekit.runtimes.dual import ZeroShot

    assert run_cli("build", str(trt_dual)).returncode == 0
    image, labels = (
        Image.fromarray(np.full((40, 40, 3), 128, np.uint8)),
        ["a photo of a cat", "a cup of coffee"],
    )
    engines, onnx_runtime = ZeroShot(trt_dual, "trt"), ZeroShot(trt_dual, "ort")
    for embed, arg in (("embed_images", [image]), ("embed_texts", labels)):
        a, b = getattr(engines, embed)(arg), getattr(onnx_runtime, embed)(arg)
        assert (a * b).sum(1).min() > 0.99  # fp16 engines against the fp32-run graph, unit vectors


@pytest.fixture(scope="module")
def trt_seq2seq(tmp_path_factory):
    """A tiny random BART for --target trt fp16: encoder/ and decoder/ with profiles each."""
    from .seq2seq_models import make_tiny_seq2seq

    root = tmp_path_factory.mktemp("trt-seq2seq")
    out = root / "trt"
    src = make_tiny_seq2seq(root / "bart", "bart")
    result = run_cli(
        "export", "--model", str(src), "--target", "trt", "--precision", "fp16", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert "encoder/ and decoder/ in fp16 for TensorRT" in result.stdout
    return src, out


def test_trt_encoder_decoder_gets_fp16_graphs_with_consistent_profiles(trt_seq2seq):
    """Each graph in a folder of its own with its profiles; the encoder's text length and the
    decoder's cross-attention length share one range; decode is one token over a past up to the
    target positions less one, prefill a prompt on an empty past; fp16 checked on ONNX Runtime."""
    import onnx

    from edgekit.export.tensorrt import graph_folders
    from edgekit.runtimes.trt_backend import engine_path

    _, out = trt_seq2seq
    manifest = json.loads((out / "manifest.json").read_text())
    export = manifest["export"]
    assert export["model_files"] == {"encoder": "encoder/model.onnx", "decoder": "decoder/model.onnx"}
    assert export["tensorrt"] == {"precision": "fp16", "engine_built": TRT_READY}
    assert [f for f, _ in graph_folders(out, export)] == [out / "encoder", out / "decoder"]
    for part in ("encoder", "decoder"):
        assert {"model.onnx", "trt_profiles.json", "build_trt.sh"} <= {p.name for p in (out / part).iterdir()}
        assert engine_path(out, export["model_files"][part]) == out / part / "model.engine"
        graph = onnx.load(str(out / part / "model.onnx"))
        assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)
        assert [i.type.tensor_type.elem_type for i in graph.graph.input if i.name.startswith("past")] in (
            [],
            [onnx.TensorProto.FLOAT] * len([i for i in graph.graph.input if i.name.startswith("past")]),
        )  # the exported io types stay
    assert not list(out.glob("*.onnx"))  # the fp32 graphs were replaced, not left beside
    encoder = export["tensorrt_graphs"]["encoder"]["profiles"][0]["shapes"]
    source = encoder["input_ids"]["max"][1]
    assert encoder["input_ids"]["min"] == [1, 1] and encoder["attention_mask"]["max"] == [16, source]
    decode, prefill = export["tensorrt_graphs"]["decoder"]["profiles"]
    assert (decode["name"], prefill["name"]) == ("decode", "prefill")
    assert (
        decode["shapes"]["input_ids"]["max"][1] == 1
        and prefill["shapes"]["past_key_values.0.decoder.key"]["max"][2] == 0
    )
    max_seq = prefill["shapes"]["input_ids"]["max"][1]
    assert decode["shapes"]["past_key_values.0.decoder.key"]["max"][2] == max_seq - 1
    for profile in (decode, prefill):
        assert profile["shapes"]["past_key_values.0.encoder.key"]["max"][2] == source
        assert profile["shapes"]["encoder_attention_mask"]["max"] == [16, source]
    validation = manifest["validation"]
    assert validation["passed"] and validation["atol"] == 0.25 and "fp32" in validation
    assert (
        0 <= validation["greedy_generation"]["identical_inputs"] <= validation["greedy_generation"]["inputs"]
    )
    ran = run_cli(
        "generate", str(out), "--backend", "ort", "--prompt", "Edge devices", "--max-new-tokens", "6"
    )
    assert ran.returncode == 0, ran.stderr


def test_build_of_encoder_decoder_refuses_clearly_without_tensorrt(trt_seq2seq):
    if TRT_READY:
        pytest.skip("TensorRT and a GPU are present: the engines are built instead")
    _, out = trt_seq2seq
    result = run_cli("build", str(out))
    assert result.returncode != 0 and "cannot build the TensorRT engine here" in result.stderr
    assert not (out / "encoder" / "model.engine").exists() and not (out / "decoder" / "model.engine").exists()
    result = run_cli("generate", str(out), "--backend", "trt", "--prompt", "Edge devices")
    assert result.returncode != 0 and "Traceback" not in result.stderr


@pytest.mark.skipif(not TRT_READY, reason=f"TensorRT engine build needs TensorRT and a GPU: {TRT_WHY}")
def test_encoder_decoder_engines_generate_what_onnx_runtime_does(trt_seq2seq):  # pragma: no cover - GPU only
    _, out = trt_seq2seq
    assert run_cli("build", str(out)).returncode == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(g["engine_built"] for g in manifest["export"]["tensorrt_graphs"].values())
    args = ["--prompt", "Edge devices run small models.", "--max-new-tokens", "8"]
    trt_run = run_cli("generate", str(out), "--backend", "trt", *args)
    ort_run = run_cli("generate", str(out), "--backend", "ort", *args)
    assert trt_run.returncode == 0, trt_run.stderr
    assert trt_run.stdout.strip() == ort_run.stdout.strip()
