"""Encoder-decoders: every registered family exports to an encoder graph (with the cross-attention
cache) and a decoder graph, validates against PyTorch, and generates the tokens transformers
generates: greedy, and beam search with length penalty, early stopping and no-repeat n-grams."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.export import ExportConfig, export_model
from edgekit.models.specs import seq2seq_model_types

from ..conftest import run_cli
from .seq2seq_models import TINY_SEQ2SEQ, make_tiny_seq2seq

BEAM_CONFIGS = [
    dict(num_beams=4),
    dict(num_beams=3, length_penalty=0.3),
    dict(num_beams=4, length_penalty=2.0, early_stopping="never"),
    dict(num_beams=4, early_stopping=True, no_repeat_ngram_size=2),
]


def test_every_registered_seq2seq_family_has_a_tiny_test_model():
    # captioners (vision-encoder-decoder) have theirs in test_captioner.py
    covered = {"mt5", "mbart", "marian", "vision-encoder-decoder", "blip", "florence2"}
    assert sorted(set(seq2seq_model_types()) - covered - set(TINY_SEQ2SEQ)) == []


@pytest.mark.parametrize("model_type", sorted(TINY_SEQ2SEQ))
def test_tiny_seq2seq_exports_two_graphs_and_generates_like_transformers(model_type, tmp_path):
    import onnx

    src = make_tiny_seq2seq(tmp_path / "src", model_type)
    out = export_model(ExportConfig(model=src, out=tmp_path / "art"), quiet=True)
    manifest = json.loads((out / "manifest.json").read_text())
    export, val = manifest["export"], manifest["validation"]
    assert export["task"] == "seq2seq" and export["model_files"] == {
        "encoder": "encoder.onnx",
        "decoder": "decoder.onnx",
    }
    assert val["passed"] and max(val["max_abs_diff"].values()) <= 1e-4
    assert {c["case"] for c in val["cases"]} >= {"encoder_single", "decoder_prefill", "decoder_step"}
    assert val["greedy_generation"]["identical"] and val["greedy_generation"]["inputs"] == 3
    layers = export["seq2seq"]["num_layers"]
    enc = onnx.load(str(out / "encoder.onnx")).graph
    dec = onnx.load(str(out / "decoder.onnx")).graph
    text = model_type != "whisper"
    assert [i.name for i in enc.input] == (["input_ids", "attention_mask"] if text else ["input_features"])
    assert [o.name for o in enc.output] == ["last_hidden_state"] + [
        f"present.{i}.encoder.{kv}" for i in range(layers) for kv in ("key", "value")
    ]
    assert [i.name for i in dec.input] == ["input_ids"] + (["encoder_attention_mask"] if text else []) + [
        f"past_key_values.{i}.{part}.{kv}"
        for i in range(layers)
        for part in ("decoder", "encoder")
        for kv in ("key", "value")
    ]
    assert [o.name for o in dec.output] == ["logits"] + [
        f"present.{i}.decoder.{kv}" for i in range(layers) for kv in ("key", "value")
    ]
    past = next(i for i in dec.input if i.name == "past_key_values.0.decoder.key").type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in past] == [
        "batch",
        export["seq2seq"]["heads"],
        "past_sequence",
        export["seq2seq"]["head_dim"],
    ]
    # The encoder graph holds no LM head: it is smaller than the decoder graph when the head is untied
    assert not any(n.op_type == "Softmax" and "lm_head" in n.name for n in enc.node)


@pytest.fixture(scope="module")
def peaked_bart(tmp_path_factory):
    """A tiny BART whose next-token distribution is sharp (EOS sometimes wins), exported to ONNX and OpenVINO."""
    from edgekit.export.validate import seq2seq_cases
    from edgekit.models.seq2seq import build_seq2seq, reference_io
    from edgekit.models.specs import seq2seq_spec_for
    from edgekit.runtimes.torch_backend import TorchSession

    root = tmp_path_factory.mktemp("peaked_bart")
    src = make_tiny_seq2seq(root / "src", "bart", peaked=30)
    arts = {
        t: export_model(ExportConfig(model=src, out=root / t, target=t, atol=1e-3), quiet=True)
        for t in ("onnx", "openvino")
    }
    built = build_seq2seq(src, seq2seq_spec_for("bart"))
    return built, arts, seq2seq_cases(built, TorchSession(reference_io(built, "encoder.onnx"), 0))


@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_seq2seq_beam_search_equals_transformers(peaked_bart, target):
    from edgekit.export.validate import seq2seq_greedy_parity
    from edgekit.runtimes.generate import GenerationConfig
    from edgekit.runtimes.registry import load_session
    from edgekit.runtimes.seq2seq import Seq2SeqStepper, generate_seq2seq

    built, arts, cases = peaked_bart
    files = json.loads((arts[target] / "manifest.json").read_text())["export"]["model_files"]
    sessions = {part: load_session(arts[target], "auto", model_file=name) for part, name in files.items()}
    if target == "openvino":  # the self-attention cache lives inside; beams reorder it through beam_idx
        manifest = json.loads((arts[target] / "manifest.json").read_text())
        assert sessions["decoder"].stateful and manifest["export"]["stateful"]
        assert {c["case"] for c in manifest["validation"]["cases"]} >= {"stateful_prefill", "stateful_step"}
        assert not any(
            s.name.startswith("past_key_values") and ".decoder." in s.name
            for s in sessions["decoder"].input_specs()
        )
    for extra in BEAM_CONFIGS:
        result = seq2seq_greedy_parity(
            built, sessions, cases, 12, strict=False, cfg=GenerationConfig(max_new_tokens=12, **extra)
        )
        assert result["identical"], (extra, result)
    # beam search makes real decisions here: it differs from greedy on some input, and EOS ends some hypotheses
    stepper = Seq2SeqStepper(sessions["encoder"], sessions["decoder"], built.io)
    greedy = [
        generate_seq2seq(stepper, p, [built.start_token], GenerationConfig(max_new_tokens=12), (3,))
        for p in cases["prompts"]
    ]
    beams = [
        generate_seq2seq(
            stepper,
            p,
            [built.start_token],
            GenerationConfig(max_new_tokens=12, num_beams=3, length_penalty=0.3),
            (3,),
        )
        for p in cases["prompts"]
    ]
    assert greedy != beams and any(b and b[-1] == 3 for b in beams)


def test_seq2seq_cli_generate_and_bad_options(peaked_bart):
    _, arts, _ = peaked_bart
    done = run_cli(
        "generate",
        str(arts["onnx"]),
        "--prompt",
        "the city council voted",
        "--max-new-tokens",
        "6",
        "--num-beams",
        "3",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    bad = run_cli("generate", str(arts["onnx"]), "--prompt", "x", "--num-beams", "3", "--do-sample")
    assert bad.returncode != 0 and "beam sampling" in bad.stderr and "Traceback" not in bad.stderr
    bad = run_cli("generate", str(arts["onnx"]), "--prompt", "x", "--length-penalty", "2")
    assert bad.returncode != 0 and "only apply to beam search" in bad.stderr
    bad = run_cli("generate", str(arts["onnx"]), "--prompt", "word " * 200)
    assert bad.returncode != 0 and "the encoder reads at most 128" in bad.stderr
    bad = run_cli(
        "bench", str(arts["onnx"]), "--backend", "ort", "--new-tokens", "128"
    )  # 128 new tokens after the start token: one too many (unset, it is 127 for this model)
    assert (
        bad.returncode != 0
        and "reach 129 tokens" in bad.stderr
        and "keep them within 128" in bad.stderr
        and "Traceback" not in bad.stderr
    )
    done = run_cli(
        "bench",
        str(arts["onnx"]),
        "--backend",
        "ort",
        "--new-tokens",
        "8",
        "--contexts",
        "4,16",
        "--seq-len",
        "16",
    )
    assert done.returncode == 0 and "encoder ms" in done.stdout and "decode tok/s" in done.stdout, done.stderr
    bad = run_cli("generate", str(arts["onnx"]), "--prompt", "x", "--max-new-tokens", "100000")
    assert bad.returncode != 0 and "exceeds the decoder's" in bad.stderr and "Traceback" not in bad.stderr


def test_bench_scores_a_text_encoder_decoder_on_eval_texts(peaked_bart, tmp_path):
    """bench --eval-data on a text encoder-decoder: every backend answers the texts greedily and its
    outputs are compared with PyTorch fp32's (the fp32 graphs give the same tokens)."""
    _, arts, _ = peaked_bart
    texts = tmp_path / "texts.txt"
    texts.write_text("the city council voted\nrain is expected later today\na new bridge opened\n")
    out = tmp_path / "bench"
    done = run_cli(
        "bench", str(arts["onnx"]), str(arts["openvino"]), "--backend", "torch,ort,openvino",
        "--new-tokens", "4", "--contexts", "4", "--seq-len", "16", "--repeat", "2",
        "--eval-data", str(texts), "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    quality = json.loads((out / "bench.json").read_text())["quality"]
    assert {(q["artifact"], q["backend"]) for q in quality} >= {("onnx", "ort"), ("openvino", "openvino")}
    for q in quality:
        assert q["inputs"] == 3 and len(q["outputs"]) == 3
        assert q["output_exact"] == 1.0 and q["output_token_f1"] == 1.0, q
    assert "outputs identical to fp32" in (out / "bench.md").read_text()


def test_load_session_on_seq2seq_needs_a_graph_name(peaked_bart):
    from edgekit.errors import InputError
    from edgekit.runtimes.registry import load_session

    _, arts, _ = peaked_bart
    with pytest.raises(InputError, match="is an encoder-decoder"):
        load_session(arts["onnx"], "auto")


@pytest.mark.parametrize("target", ["ort", "openvino"])
def test_seq2seq_weight_only_int8_quantizes_both_graphs_and_reports_tokens(peaked_bart, target, tmp_path):
    from edgekit.runtimes.generate import GenerationConfig
    from edgekit.runtimes.registry import load_session
    from edgekit.runtimes.seq2seq import Seq2SeqStepper, generate_seq2seq

    built, arts, cases = peaked_bart
    out = export_model(
        ExportConfig(model=arts["onnx"], out=tmp_path / "int8", target=target, precision="int8"), quiet=True
    )
    manifest = json.loads((out / "manifest.json").read_text())
    quant = manifest["export"]["quantization"]
    assert set(quant) == {"encoder", "decoder"}
    if target == "ort":
        import onnx

        assert (
            quant["decoder"]["quantized_matmuls"] > 0
            and quant["decoder"]["float_matmuls"] <= 4 * built.io.num_layers
        )  # only the attention MatMuls (self and cross: QK, AV) stay float
        ops = {n.op_type for n in onnx.load(str(out / "decoder.onnx")).graph.node}
        assert "MatMulNBits" in ops
    else:
        assert quant["encoder"]["compression"] == "int8_asym" and manifest["export"]["stateful"]
    generation = manifest["validation"]["greedy_generation"]
    assert (
        generation["inputs"] == 3
        and len(generation["matching_prefix"]) == 3
        and manifest["validation"]["fp32"]["passed"]
    )
    files = manifest["export"]["model_files"]
    stepper = Seq2SeqStepper(
        *(load_session(out, "auto", model_file=files[p]) for p in ("encoder", "decoder")), built.io
    )
    tokens = generate_seq2seq(
        stepper, cases["prompts"][0], [built.start_token], GenerationConfig(max_new_tokens=6), (3,)
    )
    assert 1 <= len(tokens) <= 6


def test_seq2seq_rejects_int8_and_trt(tmp_path):
    src = make_tiny_seq2seq(tmp_path / "src", "t5")
    for target, precision in (("trt", "int8"), ("onnx", "int8"), ("ort", "int8-dynamic")):
        done = run_cli(
            "export",
            "--model",
            str(src),
            "--target",
            target,
            "--precision",
            precision,
            "--out",
            str(tmp_path / f"o-{target}"),
        )
        assert done.returncode != 0 and "encoder-decoders" in done.stderr
        assert not (tmp_path / f"o-{target}").exists()
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"")
    done = run_cli(
        "export", "--model", str(src), "--target", "ort", "--precision", "int8",
        "--calib", str(tmp_path / "photos"), "--out", str(tmp_path / "o-calib"),
    )  # fmt: skip
    assert done.returncode != 0 and "--calib calibrates an image captioner's vision encoder" in done.stderr
    assert "t5 encoder-decoders take weight-only int8" in done.stderr and "Traceback" not in done.stderr


def test_encoder_cache_is_reused_for_every_beam_row(peaked_bart):
    """select() repeats the single input's cross cache for the beams and gathers only the self cache."""
    from edgekit.runtimes.registry import load_session
    from edgekit.runtimes.seq2seq import Seq2SeqStepper

    built, arts, cases = peaked_bart
    files = json.loads((arts["onnx"] / "manifest.json").read_text())["export"]["model_files"]
    stepper = Seq2SeqStepper(
        *(load_session(arts["onnx"], "ort", model_file=files[p]) for p in ("encoder", "decoder")), built.io
    )
    stepper.encode(cases["prompts"][0])
    first = stepper.start([built.start_token], rows=3)
    assert first.shape[0] == 3 and np.allclose(first[0], first[2])
    assert all(v.shape[0] == 3 for v in stepper.cross.values())
    stepper.select(np.array([2, 2, 0]))
    nxt = stepper.advance(np.array([5, 6, 7]))
    assert nxt.shape[0] == 3 and not np.allclose(nxt[0], nxt[1])
