"""--target android for a KV-cache decoder: the .ort (the ort graph, past in / present out) and the
.pte (a static cache inside the program) each generate transformers' greedy tokens on their real
runtimes; the app's JSON and golden tokens; generate and bench on the executorch backend; the
cache length and beam search refused on it; int4 reports its agreement."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.errors import InputError
from tests.export.test_decoder_families import TINY_DECODERS, make_tiny_decoder

pytest.importorskip("executorch")

MAX_SEQ = 48


@pytest.fixture(scope="module")
def tiny_llama_android(tmp_path_factory):
    from edgekit.export.api import export_model
    from edgekit.export.config import ExportConfig

    root = tmp_path_factory.mktemp("android-decoder")
    src = make_tiny_decoder(root / "src", "llama", peaked=30)
    out = export_model(
        ExportConfig(model=str(src), out=str(root / "out"), target="android", max_seq=MAX_SEQ), quiet=True
    )
    return src, out


def test_decoder_artifact_holds_both_files_the_app_json_and_golden_tokens(tiny_llama_android):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from edgekit.artifacts import read_manifest

    src, out = tiny_llama_android
    manifest = read_manifest(out)
    export, validation = manifest["export"], manifest["validation"]
    assert export["format"] == "android" and export["task"] == "text-generation"
    for name in (
        "model.ort",
        "model.pte",
        "model.required_operators.config",
        "edgekit-app.json",
        "golden.json",
    ):
        assert (out / name).is_file(), name
    assert not (out / "model.onnx").exists()
    pte = export["executorch"]
    assert pte["max_seq"] == MAX_SEQ and pte["delegated_partitions"] > 0
    assert [i["name"] for i in pte["inputs"]] == ["input_ids", "cache_position"]
    for part in ("ort", "executorch", "onnx"):
        assert validation[part]["greedy_generation"]["identical"], part
    assert validation["executorch"]["max_abs_logit_diff"] <= validation["executorch"]["atol"]

    app = json.loads((out / "edgekit-app.json").read_text())
    assert app["runtime_files"] == {"ort": "model.ort", "executorch": "model.pte"}
    assert app["ort"]["cache"]["num_layers"] == 2 and app["executorch"]["max_seq"] == MAX_SEQ
    assert app["eos_token_ids"] == export["eos_token_ids"]
    golden = json.loads((out / "golden.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(str(src), dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(src))
    for case in golden["cases"]:
        ids = tokenizer(case["text"])["input_ids"]
        assert case["input_ids"] == ids
        with torch.inference_mode():
            logits = model(torch.tensor([ids])).logits[0, -1].numpy()
        first = case["steps"][0]
        assert first["ids"][0] == case["greedy_tokens"][0] == int(logits.argmax())
        np.testing.assert_allclose(first["logits"], logits[first["ids"]], atol=1e-4)
        assert len(case["steps"]) == len(case["greedy_tokens"])


@pytest.mark.parametrize("backend", ["executorch", "ort"])
def test_generate_on_each_runtime_equals_pytorch(tiny_llama_android, backend):
    from edgekit.runtimes.generate import GenerationConfig
    from edgekit.runtimes.textgen import generate_text

    _, out = tiny_llama_android
    cfg = GenerationConfig(max_new_tokens=12)
    want = generate_text(out, "The city council voted on", cfg, backend="torch")
    pieces: list[str] = []
    got = generate_text(out, "The city council voted on", cfg, backend=backend, on_text=pieces.append)
    assert got.token_ids == want.token_ids and got.text == want.text == "".join(pieces)
    again = generate_text(out, "The city council voted on", cfg, backend=backend)
    assert again.token_ids == want.token_ids  # a new sequence starts the program's cache again at 0


def test_the_program_refuses_past_its_cache_and_beam_search(tiny_llama_android):
    from edgekit.runtimes.generate import GenerationConfig
    from edgekit.runtimes.textgen import generate_text

    _, out = tiny_llama_android
    with pytest.raises(InputError, match=f"context of {MAX_SEQ} tokens"):
        generate_text(
            out, "The city council voted on", GenerationConfig(max_new_tokens=MAX_SEQ), backend="executorch"
        )
    with pytest.raises(InputError, match="holds one sequence"):
        generate_text(
            out,
            "The city council voted on",
            GenerationConfig(max_new_tokens=4, num_beams=2),
            backend="executorch",
        )


def test_a_cache_longer_than_the_model_is_refused_and_nothing_is_written(tiny_llama_android, tmp_path):
    from edgekit.export.api import export_model
    from edgekit.export.config import ExportConfig

    src, _ = tiny_llama_android
    with pytest.raises(InputError, match="--max-seq-len 4096 is longer than the model's 256 positions"):
        export_model(
            ExportConfig(model=str(src), out=str(tmp_path / "long"), target="android", max_seq=4096),
            quiet=True,
        )
    assert not (tmp_path / "long").exists()


def test_bench_times_decoding_on_the_executorch_program(tiny_llama_android, tmp_path):
    from edgekit.benchmarks.bench_config import BenchConfig, check_bench
    from edgekit.benchmarks.harness import bench

    _, out = tiny_llama_android
    cfg = BenchConfig(
        artifacts=(out,),
        backends=("torch", "executorch"),
        prompt_len=8,
        new_tokens=8,
        contexts=(8, 16),
        warmup=1,
        repeat=2,
        out=tmp_path / "b",
    )
    rows = {r["backend"]: r for r in bench(cfg, quiet=True)["rows"]}
    assert set(rows) == {"torch", "executorch"}
    assert all(r["tokens_per_s"] > 0 for r in rows.values())
    assert rows["executorch"]["model_mb"] == pytest.approx((out / "model.pte").stat().st_size / 2**20)
    with pytest.raises(InputError, match=f"allows \\({MAX_SEQ} tokens\\)"):
        check_bench(
            BenchConfig(artifacts=(out,), backends=("executorch",), contexts=(MAX_SEQ,), new_tokens=8)
        )


def test_int4_program_is_quantized_and_reports_its_agreement(tiny_llama_android, tmp_path):
    from edgekit.artifacts import read_manifest
    from edgekit.export.api import export_model
    from edgekit.export.config import ExportConfig
    from edgekit.runtimes.generate import GenerationConfig
    from edgekit.runtimes.textgen import generate_text

    _, fp32 = tiny_llama_android
    # tied embeddings and a padding index, as SmolLM2 has: each needs its own care when quantized
    TINY_DECODERS["llama-padded"] = (
        "LlamaConfig",
        {**TINY_DECODERS["llama"][1], "tie_word_embeddings": True, "pad_token_id": 0},
    )
    try:
        src = make_tiny_decoder(tmp_path / "src", "llama-padded")
    finally:
        del TINY_DECODERS["llama-padded"]
    out = export_model(
        ExportConfig(
            model=str(src), out=str(tmp_path / "q"), target="android", precision="int4", max_seq=MAX_SEQ
        ),
        quiet=True,
    )
    manifest = read_manifest(out)
    pte = manifest["export"]["executorch"]
    assert "8da4w" in pte["quantization"]["scheme"] and "embedding_byte" in pte["portable_ops"]
    assert (out / "model.pte").stat().st_size < 0.5 * (fp32 / "model.pte").stat().st_size
    assert manifest["export"]["ort"]["quantization"]["op"] == "com.microsoft.MatMulNBits"
    generation = manifest["validation"]["executorch"]["greedy_generation"]
    assert generation["prompts"] == 3 and 0 <= generation["identical_prompts"] <= 3
    result = generate_text(
        out, "The city council voted on", GenerationConfig(max_new_tokens=6), backend="executorch"
    )
    assert len(result.token_ids) >= 1


def test_decode_workers_run_the_program_through_edgekit_and_as_a_bare_pte(tiny_llama_android):
    """decode_peers times optimum-executorch's .pte with the bare-program worker; on edgekit's own
    program it must give the tokens edgekit's session gives."""
    from edgekit.benchmarks.decode_peers import Contender

    _, out = tiny_llama_android
    runners = [Contender("edgekit", "edgekit:executorch", out), Contender("bare", "pte", out / "model.pte")]
    try:
        for c in runners:
            c.start(1)
        answers = [c.ask([5, 7, 9, 11, 13], 10) for c in runners]
    finally:
        for c in runners:
            c.stop()
    assert answers[0]["tokens"] == answers[1]["tokens"] and len(answers[0]["tokens"]) == 10
    assert len(answers[1]["times_s"]) == 10
