"""The openvino target and backend: IR converted from the validated ONNX, f32 by default, stateful decoders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.errors import InputError
from edgekit.export import ExportConfig, export_model
from edgekit.runtimes import load_session

from ..export.test_decoder_families import make_tiny_decoder


def test_encoder_ir_matches_torch_in_f32(tiny_models, tmp_path):
    out = export_model(
        ExportConfig(model=tiny_models("bert"), out=tmp_path / "ov", target="openvino"), quiet=True
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["export"]["format"] == "openvino-ir" and manifest["export"]["model_file"] == "model.xml"
    assert (
        (out / "model.xml").is_file() and (out / "model.bin").is_file() and not (out / "model.onnx").exists()
    )
    val = manifest["validation"]
    assert val["runtime"] == "openvino" and val["inference_precision"] == "f32" and val["passed"]
    assert val["max_abs_diff"]["last_hidden_state"] <= 1e-4
    assert val["onnx"]["runtime"] == "onnxruntime"  # the ONNX it came from was validated first
    session = load_session(out)  # auto: the backend the format is for
    assert session.backend == "openvino" and session.precision == "f32"
    ids = np.array([[2, 10, 11, 3, 0]], dtype=np.int64)
    feeds = {
        "input_ids": ids,
        "token_type_ids": np.zeros_like(ids),
        "attention_mask": (ids != 0).astype(np.int64),
    }
    np.testing.assert_allclose(
        session.run(feeds)["last_hidden_state"],
        load_session(out, "torch").run(feeds)["last_hidden_state"],
        atol=1e-4,
    )
    with pytest.raises(InputError, match="cannot run"):
        load_session(out, "ort")


def test_fp16_weights_are_validated_with_their_tolerance(tiny_models, tmp_path):
    out = export_model(
        ExportConfig(model=tiny_models("bert"), out=tmp_path / "ov16", target="openvino", precision="fp16"),
        quiet=True,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["export"]["weights"] == "fp16" and manifest["validation"]["atol"] == 2e-2
    fp32 = export_model(
        ExportConfig(model=tiny_models("bert"), out=tmp_path / "ov32", target="openvino"), quiet=True
    )
    assert (out / "model.bin").stat().st_size < 0.6 * (fp32 / "model.bin").stat().st_size


def test_fp16_is_refused_for_onnx(tiny_models, tmp_path):
    with pytest.raises(InputError, match="--precision fp16 is not available for --target onnx"):
        export_model(
            ExportConfig(model=tiny_models("bert"), out=tmp_path / "x", precision="fp16"), quiet=True
        )
    assert not (tmp_path / "x").exists()


def test_stateful_decoder_from_an_onnx_artifact_generates_like_ort(tmp_path):
    from edgekit.models.cache_io import DecoderIO
    from edgekit.runtimes.generate import GenerationConfig, generate_ids

    src = make_tiny_decoder(tmp_path / "src", "llama", peaked=30)
    onnx_art = export_model(ExportConfig(model=src, out=tmp_path / "onnx", atol=1e-3), quiet=True)
    ov_art = export_model(ExportConfig(model=onnx_art, out=tmp_path / "ov", target="openvino"), quiet=True)
    manifest = json.loads((ov_art / "manifest.json").read_text())
    assert manifest["export"]["stateful"] is True and manifest["export"]["from_artifact"] == str(onnx_art)
    assert manifest["source"]["path"] == str(src.resolve())
    assert [i["name"] for i in manifest["export"]["inputs"]] == [
        "input_ids",
        "attention_mask",
        "position_ids",
    ]
    assert manifest["validation"]["greedy_generation"]["identical"]
    assert {c["case"] for c in manifest["validation"]["cases"]} == {"prefill", "step_after_prefill"}
    io = DecoderIO.from_manifest(manifest)
    ov_session, ort_session = load_session(ov_art), load_session(onnx_art)
    assert ov_session.stateful and [s.name for s in ov_session.output_specs()] == ["logits"]
    for prompt in ([2, 40, 41], [2, 7, 8, 9, 10, 11]):
        cfg = GenerationConfig(max_new_tokens=10)
        assert generate_ids(ov_session, io, prompt, cfg) == generate_ids(ort_session, io, prompt, cfg)
        # beam search reorders the cache kept inside OpenVINO (select_rows) like ORT's explicit one
        beams = GenerationConfig(max_new_tokens=10, num_beams=3, length_penalty=0.5)
        assert generate_ids(ov_session, io, prompt, beams, eos_token_ids=(3,)) == generate_ids(
            ort_session, io, prompt, beams, eos_token_ids=(3,)
        )


def test_converting_an_onnx_artifact_to_onnx_is_refused(tiny_models, tmp_path):
    onnx_art = export_model(ExportConfig(model=tiny_models("bert"), out=tmp_path / "onnx"), quiet=True)
    with pytest.raises(InputError, match="already an ONNX artifact"):
        export_model(ExportConfig(model=onnx_art, out=tmp_path / "again"), quiet=True)


def test_bench_runs_each_backend_on_the_formats_it_reads(tiny_models, tmp_path):
    from edgekit.benchmarks.harness import BenchConfig, bench

    onnx_art = export_model(ExportConfig(model=tiny_models("bert"), out=tmp_path / "onnx"), quiet=True)
    ov_art = export_model(ExportConfig(model=onnx_art, out=tmp_path / "ov", target="openvino"), quiet=True)
    result = bench(
        BenchConfig(
            artifacts=(onnx_art, ov_art),
            backends=("torch", "ort", "openvino"),
            batches=(2,),
            seq_lens=(8,),
            warmup=0,
            repeat=2,
            settle_s=0.0,
        ),
        quiet=True,
    )
    pairs = {(r["artifact"], r["backend"]) for r in result["rows"]}
    assert pairs == {("onnx", "torch"), ("onnx", "ort"), ("ov", "openvino")}
    ov_row = next(r for r in result["rows"] if r["backend"] == "openvino")
    assert ov_row["cosine.last_hidden_state"] > 0.99999 and ov_row["speedup_vs_torch"] > 0
