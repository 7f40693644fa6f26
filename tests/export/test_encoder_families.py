"""Every registered encoder family exports, validates, and runs on shapes it was not traced with."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.export import ExportConfig, export_model
from edgekit.models.specs import list_specs, supported_model_types

from ..conftest import TINY_CONFIGS, add_sentence_transformers_files, make_tiny_encoder


def test_every_registered_model_type_has_a_tiny_test_model():
    missing = sorted(set(supported_model_types()) - set(TINY_CONFIGS))
    assert not missing, f"registered model types without a tiny test config: {missing}"


@pytest.mark.parametrize("model_type", supported_model_types())
def test_tiny_encoder_exports_and_matches_torch(model_type, tiny_models, tmp_path):
    import onnx
    from transformers import AutoTokenizer

    from edgekit.runtimes import load_session

    out = export_model(ExportConfig(model=tiny_models(model_type), out=tmp_path / "art"), quiet=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["validation"]["passed"] is True
    assert manifest["validation"]["max_abs_diff"]["last_hidden_state"] <= 1e-4
    assert manifest["export"]["exporter"] == "dynamo"
    assert manifest["export"]["opset"] == 20
    assert {c["case"] for c in manifest["validation"]["cases"]} >= {"padded_batch3", "batch1_len8"}
    expected_inputs = [
        n for n in TINY_CONFIGS[model_type][2] if n in ("input_ids", "attention_mask", "token_type_ids")
    ]
    if model_type in ("distilbert", "mpnet"):
        expected_inputs = [n for n in expected_inputs if n != "token_type_ids"]
    graph = onnx.load(str(out / "model.onnx")).graph
    assert [i.name for i in graph.input] == expected_inputs
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == ["batch", "sequence"]
    assert [o.name for o in graph.output] == ["last_hidden_state"]
    assert (out / "tokenizer.json").is_file() and (out / "config.json").is_file()

    # A shape the graph was never traced or validated with: batch 5, sequence 17.
    tok = AutoTokenizer.from_pretrained(str(out))
    enc = tok(["the city council voted"] * 5, padding="max_length", max_length=17, return_tensors="np")
    feeds = {n: enc[n].astype(np.int64) for n in expected_inputs}
    ort_out = load_session(out, "ort").run(feeds)["last_hidden_state"]
    torch_out = load_session(out, "torch").run(feeds)["last_hidden_state"]
    assert ort_out.shape == (5, 17, 32)
    np.testing.assert_allclose(ort_out, torch_out, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "mode,normalize", [("mean", True), ("cls", False), ("max", True), ("mean_sqrt_len", False)]
)
def test_sentence_transformers_pooling_is_exported(mode, normalize, tmp_path):
    from edgekit.runtimes import load_session

    src = add_sentence_transformers_files(make_tiny_encoder(tmp_path / "src", "bert"), mode, normalize)
    out = export_model(ExportConfig(model=src, out=tmp_path / "art"), quiet=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["export"]["task"] == "sentence-embedding"
    assert manifest["export"]["pooling"] == {"mode": mode, "normalize": normalize}
    assert (out / "1_Pooling" / "config.json").is_file()
    session = load_session(out, "ort")
    assert [s.name for s in session.output_specs()] == ["last_hidden_state", "sentence_embedding"]
    ids = np.array([[2, 10, 11, 12, 3, 0, 0], [2, 13, 14, 15, 16, 17, 3]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    result = session.run({"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": mask})
    hidden, pooled = result["last_hidden_state"], result["sentence_embedding"]
    # Pooling worked out by hand from the token states.
    m = mask[..., None].astype(np.float64)
    expected = {
        "mean": (hidden * m).sum(1) / m.sum(1),
        "cls": hidden[:, 0],
        "max": np.where(m > 0, hidden, -1e9).max(1),
        "mean_sqrt_len": (hidden * m).sum(1) / np.sqrt(m.sum(1)),
    }[mode]
    if normalize:
        expected = expected / np.linalg.norm(expected, axis=1, keepdims=True)
        np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(pooled, expected, atol=1e-5)


def test_feature_extraction_task_skips_pooling(tmp_path):
    src = add_sentence_transformers_files(make_tiny_encoder(tmp_path / "src", "bert"))
    out = export_model(ExportConfig(model=src, out=tmp_path / "art", task="feature-extraction"), quiet=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["export"]["task"] == "feature-extraction"
    assert [o["name"] for o in manifest["export"]["outputs"]] == ["last_hidden_state"]


def test_torchscript_exporter_is_validated_too(tiny_models, tmp_path):
    out = export_model(
        ExportConfig(model=tiny_models("bert"), out=tmp_path / "art", exporter="torchscript"), quiet=True
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["export"]["exporter"] == "torchscript"
    assert manifest["export"]["opset"] == 18
    assert manifest["validation"]["passed"]


def test_specs_are_registered_once():
    types = [t for spec in list_specs() for t in spec.model_types]
    assert len(types) == len(set(types))
