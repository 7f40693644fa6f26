"""End to end on the real packaged all-MiniLM-L6-v2, through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ..conftest import run_cli

pytestmark = pytest.mark.e2e


def test_cli_export_then_bench_real_minilm(minilm_dir, tmp_path):
    out = tmp_path / "minilm"
    result = run_cli("export", "--model", str(minilm_dir), "--target", "onnx", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "validated on onnxruntime on 5 inputs" in result.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stage"] == "export" and manifest["edgekit_version"]
    assert manifest["source"]["path"] == str(minilm_dir) and len(manifest["source"]["sha256"]) == 64
    assert manifest["config"]["target"] == "onnx" and manifest["seed"] == 0
    assert manifest["export"]["task"] == "sentence-embedding"
    assert manifest["export"]["pooling"] == {"mode": "mean", "normalize": True}
    assert manifest["validation"]["passed"] and manifest["validation"]["atol"] == 1e-4
    assert manifest["validation"]["max_abs_diff"]["sentence_embedding"] < 1e-5
    assert set(manifest["files"]) >= {
        "model.onnx",
        "tokenizer.json",
        "config.json",
        "modules.json",
        "1_Pooling/config.json",
    }
    assert "Traceback" not in result.stderr

    bench_dir = tmp_path / "bench"
    result = run_cli(
        "bench",
        str(out),
        "--backend",
        "torch,ort",
        "--batch",
        "1,2",
        "--seq-len",
        "32",
        "--warmup",
        "1",
        "--repeat",
        "3",
        "--out",
        str(bench_dir),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((bench_dir / "bench.json").read_text())
    assert {(r["backend"], r["batch"], r["seq_len"]) for r in report["rows"]} == {
        (b, n, 32) for b in ("torch", "ort") for n in (1, 2)
    }
    for row in report["rows"]:
        assert row["cosine.sentence_embedding"] > 0.99999
    assert "| ort |" in (bench_dir / "bench.md").read_text()
    assert "p50 ms" in result.stdout


def test_real_embeddings_rank_related_sentences_first(minilm_artifact):
    from transformers import AutoTokenizer

    from edgekit.runtimes import load_session

    tok = AutoTokenizer.from_pretrained(str(minilm_artifact))
    texts = [
        "A man is playing a guitar on stage.",
        "Someone performs music with a guitar.",
        "The stock market fell sharply today.",
    ]
    enc = tok(texts, padding=True, return_tensors="np")
    session = load_session(minilm_artifact, "ort")
    emb = session.run(
        {k: enc[k].astype(np.int64) for k in ("input_ids", "token_type_ids", "attention_mask")}
    )["sentence_embedding"]
    sims = emb @ emb.T
    assert sims[0, 1] > 0.5 > sims[0, 2]
