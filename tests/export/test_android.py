"""--target android: the .ort and the .pte of a text encoder, each run on its real runtime
(onnxruntime, executorch.runtime) against PyTorch; the app's JSON and golden vectors; the
executorch backend in bench; bounds and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.errors import InputError
from tests.conftest import add_sentence_transformers_files, make_tiny_encoder

pytest.importorskip("executorch")

TEXTS = [
    "Phones search notes offline.",
    "A second and somewhat longer sentence about small models on devices.",
]


@pytest.fixture(scope="module")
def tiny_android(tmp_path_factory):
    """A tiny sentence-transformers BERT exported for Android, planned for batch 2 x 64 tokens."""
    from edgekit.export.api import export_model
    from edgekit.export.config import ExportConfig

    root = tmp_path_factory.mktemp("android")
    model = add_sentence_transformers_files(make_tiny_encoder(root / "bert", "bert"))
    out = export_model(
        ExportConfig(model=str(model), out=str(root / "out"), target="android", max_batch=2, max_seq=64),
        quiet=True,
    )
    return model, out


def _feed(model, texts, names=("input_ids", "token_type_ids", "attention_mask")):
    from transformers import AutoTokenizer

    enc = AutoTokenizer.from_pretrained(str(model))(texts, padding=True, return_tensors="np")
    return {n: enc[n].astype(np.int64) for n in names}


def test_android_artifact_holds_both_runtimes_files_and_the_app_files(tiny_android):
    from edgekit.artifacts import read_manifest
    from edgekit.export.ort_format import required_operators

    _, out = tiny_android
    manifest = read_manifest(out)
    export = manifest["export"]
    assert export["format"] == "android" and export["runtime_files"] == {
        "ort": "model.ort",
        "executorch": "model.pte",
    }
    for name in (
        "model.ort",
        "model.pte",
        "model.required_operators.config",
        "edgekit-app.json",
        "golden.json",
    ):
        assert (out / name).is_file() and name in manifest["files"]
    assert not (out / "model.onnx").exists()
    ops = required_operators(out / "model.required_operators.config")
    assert any(k.startswith("ai.onnx;") for k in ops) and "Softmax" in {o for v in ops.values() for o in v}
    assert export["executorch"]["bounds"] == {"max_batch": 2, "max_seq": 64}
    assert export["executorch"]["delegated_partitions"] > 0
    assert manifest["validation"]["ort"]["passed"] and manifest["validation"]["executorch"]["passed"]


@pytest.mark.parametrize("backend", ["ort", "executorch"])
def test_each_runtime_file_matches_pytorch_on_new_text(tiny_android, backend):
    from edgekit.runtimes import load_session

    model, out = tiny_android
    session = load_session(out, backend, threads=1)
    reference = load_session(out, "torch")
    feed = _feed(model, TEXTS + TEXTS[:1])  # batch 3 > the planned 2: run in slices
    got, want = session.run(feed), reference.run(feed)
    for name in ("last_hidden_state", "sentence_embedding"):
        assert got[name].shape == want[name].shape
        np.testing.assert_allclose(got[name], want[name], atol=1e-4)


def test_executorch_refuses_a_sequence_beyond_its_plan(tiny_android):
    from edgekit.runtimes import load_session

    _, out = tiny_android
    session = load_session(out, "executorch")
    ids = np.full((1, 65), 7, dtype=np.int64)
    with pytest.raises(InputError, match="planned for at most 64"):
        session.run(
            {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": np.ones_like(ids)}
        )


def test_a_damaged_program_is_named_in_one_line(tiny_android, tmp_path):
    import shutil

    from edgekit.runtimes.registry import load_session

    _, out = tiny_android
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    size = (copy / "model.pte").stat().st_size
    (copy / "model.pte").write_bytes(b"\x00" * size)  # the size its manifest records, not a program
    with pytest.raises(InputError, match="ExecuTorch cannot read .*model.pte"):
        load_session(copy, "executorch")
    (copy / "model.pte").write_bytes(b"\x00" * 4096)
    with pytest.raises(InputError, match="model.pte has 4096 bytes, its manifest records"):
        load_session(copy, "executorch")


def test_app_json_and_golden_vectors_agree_with_the_tokenizer_and_pytorch(tiny_android):
    from transformers import AutoTokenizer

    from edgekit.runtimes import load_session

    model, out = tiny_android
    app = json.loads((out / "edgekit-app.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(model))
    assert app["runtime_files"] == {"ort": "model.ort", "executorch": "model.pte"}
    assert app["tokenizer"]["type"] == "WordPiece" and app["tokenizer"]["lowercase"] is True
    assert app["tokenizer"]["special_tokens"]["cls"] == {"token": "[CLS]", "id": tokenizer.cls_token_id}
    assert app["pooling"] == {"mode": "mean", "normalize": True}
    assert [i["name"] for i in app["inputs"]] == ["input_ids", "token_type_ids", "attention_mask"]
    golden = json.loads((out / "golden.json").read_text())["cases"]
    reference = load_session(out, "torch")
    assert len(golden) == 3
    for case in golden:
        assert case["inputs"]["input_ids"] == tokenizer([case["text"]])["input_ids"]
        feed = {n: np.array(v, dtype=np.int64) for n, v in case["inputs"].items()}
        want = reference.run(feed)["sentence_embedding"]
        np.testing.assert_allclose(np.array(case["outputs"]["sentence_embedding"]), want, atol=1e-5)


def test_bench_times_the_executorch_and_ort_files(tiny_android, tmp_path):
    from edgekit.benchmarks.bench_config import BenchConfig
    from edgekit.benchmarks.harness import bench

    _, out = tiny_android
    result = bench(
        BenchConfig(
            artifacts=(out,),
            backends=("torch", "ort", "executorch"),
            seq_lens=(32,),
            warmup=1,
            repeat=3,
            out=tmp_path / "b",
        ),
        quiet=True,
    )
    rows = {r["backend"]: r for r in result["rows"]}
    assert set(rows) == {"torch", "ort", "executorch"}
    assert all(r["p50_ms"] > 0 for r in rows.values())
    assert rows["executorch"]["model_mb"] == pytest.approx((out / "model.pte").stat().st_size / 2**20)


def test_bench_refuses_a_length_beyond_the_programs_plan(tiny_android):
    from edgekit.benchmarks.bench_config import BenchConfig, check_bench

    _, out = tiny_android
    with pytest.raises(InputError, match="allows \\(64 tokens\\)"):
        check_bench(BenchConfig(artifacts=(out,), backends=("executorch",), seq_lens=(128,)))


def test_android_refuses_what_it_cannot_build(tiny_models, tmp_path):
    from edgekit.export.api import plan_export
    from edgekit.export.config import ExportConfig

    model = tiny_models("bert")
    with pytest.raises(InputError, match="longer than the model's 128 positions"):
        from edgekit.export.api import export_model

        export_model(
            ExportConfig(model=str(model), out=str(tmp_path / "a"), target="android", max_seq=4096),
            quiet=True,
        )
    assert not (tmp_path / "a").exists()
    with pytest.raises(InputError, match="--precision int4 is weight-only, for decoders"):
        plan_export(
            ExportConfig(model=str(model), out=str(tmp_path / "b"), target="android", precision="int4")
        )
