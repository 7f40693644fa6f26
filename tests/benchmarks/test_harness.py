from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import pytest

from edgekit.artifacts import CPU_FEATURES
from edgekit.benchmarks.harness import BenchConfig, bench
from edgekit.benchmarks.measures import agreement, percentiles
from edgekit.export import ExportConfig, export_model


def test_percentiles_worked_by_hand():
    stats = percentiles([0.001 * i for i in range(1, 101)])  # 1..100 ms
    assert stats["p50_ms"] == pytest.approx(50.5)
    assert stats["p90_ms"] == pytest.approx(90.1)
    assert stats["p99_ms"] == pytest.approx(99.01)
    assert stats["min_ms"] == pytest.approx(1.0)


def test_agreement_uses_the_mask_and_the_pooled_output():
    ref = {"last_hidden_state": np.ones((1, 3, 2)), "sentence_embedding": np.array([[1.0, 0.0]])}
    got = {
        "last_hidden_state": np.array([[[1.0, 1.0], [1.0, 1.0], [5.0, -5.0]]]),
        "sentence_embedding": np.array([[1.0, 1.0]]),
    }
    result = agreement(ref, got, np.array([[1, 1, 0]]))
    assert result["max_abs_diff.last_hidden_state"] == pytest.approx(6.0)
    assert result["cosine.sentence_embedding"] == pytest.approx(1 / np.sqrt(2))
    only_hidden = agreement(
        {"last_hidden_state": ref["last_hidden_state"]},
        {"last_hidden_state": got["last_hidden_state"]},
        np.array([[1, 1, 0]]),
    )
    assert only_hidden["cosine.last_hidden_state"] == pytest.approx(1.0)  # the padded token is masked out


def test_bench_two_backends_two_cases_writes_reports(tiny_models, tmp_path):
    art = export_model(ExportConfig(model=tiny_models("bert"), out=tmp_path / "art"), quiet=True)
    cfg = BenchConfig(
        artifacts=(art,),
        backends=("torch", "ort"),
        batches=(1, 2),
        seq_lens=(16,),
        warmup=1,
        repeat=4,
        rounds=2,
        out=tmp_path / "bench",
        settle_s=0.0,
    )
    result = bench(cfg, quiet=True)
    rows = result["rows"]
    assert {(r["backend"], r["batch"]) for r in rows} == {("torch", 1), ("ort", 1), ("torch", 2), ("ort", 2)}
    for row in rows:
        assert row["runs"] == 4
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["throughput_per_s"] > 0 and row["peak_rss_mb"] > 10 and row["model_mb"] > 0
        assert row["cosine.last_hidden_state"] == pytest.approx(1.0, abs=1e-5)
        assert row["max_abs_diff.last_hidden_state"] <= 1e-4
    torch_rows = [r for r in rows if r["backend"] == "torch"]
    assert all(r["speedup_vs_torch"] == 1.0 for r in torch_rows)
    saved = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert len(saved["rows"]) == 4 and saved["threads"] >= 1
    # the CPU is recorded, so figures from different machines are never compared blind
    assert saved["cpu"]["usable_cores"] >= 1 and saved["cpu"]["model"]
    if Path("/proc/cpuinfo").is_file() and platform.machine() == "x86_64":
        flags = set(
            next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
            .split(":")[1]
            .split()
        )
        assert set(saved["cpu"]["features"]) == flags & set(CPU_FEATURES)
    md = (tmp_path / "bench" / "bench.md").read_text()
    assert f"CPU: {saved['cpu']['model']}, {saved['cpu']['usable_cores']} usable cores" in md
    assert md.count("\n| art |") == 4 or md.count("| art | ") == 4
    assert (tmp_path / "bench" / "bench.png").stat().st_size > 1000
    assert json.loads((tmp_path / "bench" / "manifest.json").read_text())["stage"] == "bench"


def test_bench_uses_the_users_text(tiny_models, tmp_path):
    art = export_model(ExportConfig(model=tiny_models("bert"), out=tmp_path / "art"), quiet=True)
    text = tmp_path / "t.txt"
    text.write_text("the city council voted\n\nrain is expected tomorrow\n")
    result = bench(
        BenchConfig(
            artifacts=(art,),
            backends=("ort",),
            batches=(2,),
            seq_lens=(8,),
            warmup=0,
            repeat=1,
            rounds=1,
            text=text,
            settle_s=0.0,
        ),
        quiet=True,
    )
    assert result["inputs"] == str(text)
    assert result["rows"][0]["speedup_vs_torch"] is None


def test_generation_bench_reports_ttft_tokens_per_s_and_context_latency(tmp_path):
    from ..export.test_decoder_families import make_tiny_decoder

    onnx_art = export_model(
        ExportConfig(model=make_tiny_decoder(tmp_path / "src", "llama"), out=tmp_path / "onnx"), quiet=True
    )
    ov_art = export_model(ExportConfig(model=onnx_art, out=tmp_path / "ov", target="openvino"), quiet=True)
    cfg = BenchConfig(
        artifacts=(onnx_art, ov_art),
        backends=("torch", "ort", "openvino"),
        new_tokens=6,
        prompt_len=8,
        contexts=(4, 16),
        rounds=1,
        settle_s=0.0,
        out=tmp_path / "bench",
    )
    result = bench(cfg, quiet=True)
    rows = {r["backend"]: r for r in result["rows"]}
    assert set(rows) == {"torch", "ort", "openvino"}
    for row in rows.values():
        assert row["kind"] == "text-generation" and row["new_tokens"] == 6
        assert row["tokens_per_s"] > 0 and row["ttft_ms"] > 0
        for ctx in (4, 16):
            assert row[f"per_token_ms@{ctx}"] > 0 and row[f"recompute_ms@{ctx}"] > 0
        assert row["per_token_growth"] == pytest.approx(row["per_token_ms@16"] / row["per_token_ms@4"])
    assert rows["torch"]["speedup_vs_torch"] == 1.0
    assert rows["ort"]["speedup_vs_torch"] == pytest.approx(
        rows["ort"]["tokens_per_s"] / rows["torch"]["tokens_per_s"]
    )
    md = (tmp_path / "bench" / "bench.md").read_text()
    assert "decode tok/s" in md and "no-cache ms @16" in md
    assert (tmp_path / "bench" / "bench.png").stat().st_size > 1000


def test_generation_bench_rejects_batches_and_mixed_artifacts(tmp_path, tiny_models):
    from edgekit.errors import InputError

    from ..export.test_decoder_families import make_tiny_decoder

    dec = export_model(
        ExportConfig(model=make_tiny_decoder(tmp_path / "src", "gpt2"), out=tmp_path / "dec"), quiet=True
    )
    enc = export_model(ExportConfig(model=tiny_models("bert"), out=tmp_path / "enc"), quiet=True)
    with pytest.raises(InputError, match="batch 1"):
        bench(BenchConfig(artifacts=(dec,), backends=("ort",), batches=(2,)), quiet=True)
    with pytest.raises(InputError, match="encoder and text-generation artifacts together"):
        bench(BenchConfig(artifacts=(dec, enc), backends=("ort",), contexts=(4, 8), new_tokens=4), quiet=True)
    with pytest.raises(InputError, match="reach 640 tokens, longer than .* allows \\(256 tokens\\)"):
        bench(BenchConfig(artifacts=(dec,), backends=("ort",), contexts=(16, 128, 512)), quiet=True)


def test_seq2seq_bench_times_encoder_ttft_and_decoding_on_every_backend(tmp_path, tiny_models):
    """A text encoder-decoder (tiny BART) on PyTorch, ONNX Runtime and a stateful OpenVINO decoder,
    and a speech one (tiny Whisper, 64 decoder positions) whose default contexts are cut to fit."""
    from edgekit.errors import InputError

    from ..export.seq2seq_models import make_tiny_seq2seq

    bart = export_model(
        ExportConfig(model=make_tiny_seq2seq(tmp_path / "bart-src", "bart"), out=tmp_path / "bart"),
        quiet=True,
    )
    bart_ov = export_model(ExportConfig(model=bart, out=tmp_path / "bart-ov", target="openvino"), quiet=True)
    cfg = BenchConfig(
        artifacts=(bart, bart_ov),
        backends=("torch", "ort", "openvino"),
        seq_lens=(20,),
        new_tokens=6,
        contexts=(4, 16),
        rounds=1,
        settle_s=0.0,
        out=tmp_path / "bench",
    )
    result = bench(cfg, quiet=True)
    rows = {r["backend"]: r for r in result["rows"]}
    assert set(rows) == {"torch", "ort", "openvino"}
    for row in rows.values():
        assert row["kind"] == "seq2seq" and row["encoder_input"] == "20 tokens of real text"
        assert 0 < row["encoder_ms"] < row["ttft_ms"] and row["tokens_per_s"] > 0
        assert row["per_token_growth"] == pytest.approx(row["per_token_ms@16"] / row["per_token_ms@4"])
        assert row["recompute_ms@4"] > 0 and row["model_mb"] > 0
    assert rows["ort"]["speedup_vs_torch"] == pytest.approx(
        rows["ort"]["tokens_per_s"] / rows["torch"]["tokens_per_s"]
    )
    md = (tmp_path / "bench" / "bench.md").read_text()
    assert "encoder ms" in md and "no-cache ms @16" in md and "decoder start token" in md

    whisper = export_model(
        ExportConfig(model=make_tiny_seq2seq(tmp_path / "whisper-src", "whisper"), out=tmp_path / "whisper"),
        quiet=True,
    )
    result = bench(
        BenchConfig(artifacts=(whisper,), backends=("ort",), new_tokens=8, rounds=1, settle_s=0.0), quiet=True
    )
    assert result["config"]["contexts"] == [16]  # 128 and 512 do not fit in 64 positions
    (row,) = result["rows"]
    assert row["encoder_input"] == "seeded features [1, 16, 48] (one full window)" and row["tokens_per_s"] > 0
    with pytest.raises(
        InputError, match="--new-tokens or --contexts reach 65 tokens, longer than .* allows \\(64 tokens\\)"
    ):
        bench(BenchConfig(artifacts=(whisper,), backends=("ort",), new_tokens=64), quiet=True)
    enc = export_model(ExportConfig(model=tiny_models("bert"), out=tmp_path / "enc"), quiet=True)
    with pytest.raises(InputError, match="encoder and seq2seq artifacts together"):
        bench(BenchConfig(artifacts=(whisper, enc), backends=("ort",), new_tokens=8), quiet=True)
