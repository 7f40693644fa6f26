"""Every registered decoder family exports with a KV cache, validates, and generates like transformers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.export import ExportConfig, export_model
from edgekit.models.specs import decoder_model_types

from ..conftest import write_tokenizer

TINY_DECODERS = {
    "llama": (
        "LlamaConfig",
        dict(
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
        ),
    ),
    "qwen2": (
        "Qwen2Config",
        dict(
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
        ),
    ),
    "mistral": (
        "MistralConfig",
        dict(
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            max_position_embeddings=256,
            sliding_window=None,
        ),
    ),
    "phi3": (
        "Phi3Config",
        dict(
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=256,
            pad_token_id=0,
        ),
    ),
    "gpt2": ("GPT2Config", dict(n_embd=64, n_layer=2, n_head=4, n_positions=256)),
    "gemma": (
        "GemmaConfig",
        dict(
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=256,
        ),
    ),
    # a window of 4 tokens, much shorter than the test prompts, on one of the two layers
    "gemma3_text": (
        "Gemma3TextConfig",
        dict(
            hidden_size=64,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=256,
            sliding_window=4,
            layer_types=["sliding_attention", "full_attention"],
        ),
    ),
}


def make_tiny_decoder(folder, model_type: str, seed: int = 0, peaked: float = 0.0):
    """A random decoder saved with a tokenizer. ``peaked`` > 0 scales the (untied) LM head, the EOS
    row a bit more, so the next-token distribution is sharp and EOS sometimes wins (for beam search)."""
    import torch
    import transformers

    cls_name, kwargs = TINY_DECODERS[model_type]
    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer(folder, ["input_ids", "attention_mask"])
    config = getattr(transformers, cls_name)(
        vocab_size=vocab,
        bos_token_id=2,
        eos_token_id=3,
        **({"tie_word_embeddings": False} if peaked else {}),
        **kwargs,
    )
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    if peaked:
        with torch.no_grad():
            head = model.get_output_embeddings().weight
            head.mul_(peaked)
            head[3] *= 1.6
    model.save_pretrained(str(folder))
    return folder


def test_every_registered_decoder_has_a_tiny_test_model():
    assert sorted(set(decoder_model_types()) - set(TINY_DECODERS)) == []


@pytest.mark.parametrize("model_type", decoder_model_types())
def test_tiny_decoder_exports_with_cache_and_generates(model_type, tmp_path):
    import onnx

    from edgekit.models.cache_io import DecoderIO
    from edgekit.runtimes import load_session
    from edgekit.runtimes.generate import GenerationConfig, generate_ids

    src = make_tiny_decoder(tmp_path / "src", model_type)
    out = export_model(ExportConfig(model=src, out=tmp_path / "art"), quiet=True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["export"]["task"] == "text-generation"
    val = manifest["validation"]
    assert val["passed"] and val["greedy_generation"]["identical"]
    assert {c["case"] for c in val["cases"]} == {"prefill_len24", "step_after_prefill", "left_padded_batch2"}
    assert max(val["max_abs_diff"].values()) <= 1e-4
    cache = manifest["export"]["cache"]
    graph = onnx.load(str(out / "model.onnx")).graph
    names = [i.name for i in graph.input]
    assert names[:3] == ["input_ids", "attention_mask", "position_ids"]
    assert names[3:] == [f"past_key_values.{i}.{kv}" for i in range(2) for kv in ("key", "value")]
    assert "past_key_values.1.value" in names and [o.name for o in graph.output][:3] == [
        "logits",
        "present.0.key",
        "present.0.value",
    ]
    past = next(i for i in graph.input if i.name == "past_key_values.0.key").type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in past] == [
        "batch",
        cache["kv_heads"],
        "past_sequence",
        cache["head_dim"],
    ]

    # Generation through the session interface: greedy is deterministic, sampling follows the seed.
    session = load_session(out, "ort")
    io = DecoderIO.from_manifest(manifest)
    prompt = [2, 40, 41, 42, 43]
    greedy = generate_ids(session, io, prompt, GenerationConfig(max_new_tokens=6))
    assert len(greedy) == 6 or greedy[-1] == 3
    sampled = [
        generate_ids(
            session,
            io,
            prompt,
            GenerationConfig(max_new_tokens=6, do_sample=True, temperature=0.7, top_p=0.9, seed=1),
        )
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1] and len(sampled[0]) in range(1, 7)


def test_decoder_cache_step_matches_full_recompute(tmp_path):
    """Logits of a step fed the cache equal the logits of recomputing the whole sequence."""
    from edgekit.models.cache_io import DecoderIO
    from edgekit.runtimes import load_session

    out = export_model(
        ExportConfig(model=make_tiny_decoder(tmp_path / "src", "llama"), out=tmp_path / "art"), quiet=True
    )
    session = load_session(out, "ort")
    io = DecoderIO.from_manifest(json.loads((out / "manifest.json").read_text()))
    ids = np.array([[2, 10, 11, 12, 13, 14]], dtype=np.int64)
    full = session.run(
        {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "position_ids": np.arange(6)[None],
            **io.empty_past(1),
        }
    )
    first = session.run(
        {
            "input_ids": ids[:, :5],
            "attention_mask": np.ones((1, 5), np.int64),
            "position_ids": np.arange(5)[None],
            **io.empty_past(1),
        }
    )
    past = {p: first[q] for p, q in zip(io.past_names(), io.present_names())}
    step = session.run(
        {
            "input_ids": ids[:, 5:],
            "attention_mask": np.ones((1, 6), np.int64),
            "position_ids": np.array([[5]]),
            **past,
        }
    )
    np.testing.assert_allclose(step["logits"][0, -1], full["logits"][0, -1], atol=1e-5)
    np.testing.assert_allclose(step["present.1.key"], full["present.1.key"], atol=1e-5)


BEAM_CONFIGS = [
    dict(num_beams=4),
    dict(num_beams=3, length_penalty=0.5),
    dict(num_beams=4, length_penalty=2.0, early_stopping="never"),
    dict(num_beams=4, early_stopping=True),
    dict(num_beams=4, no_repeat_ngram_size=2),
]


@pytest.mark.parametrize(
    "model_type", ["llama", "qwen2", "mistral", "gpt2"]
)  # the three it fuses, and one it leaves
def test_ort_target_fuses_attention_where_it_can(model_type, tmp_path):
    """--target ort exports llama-style attention as GroupQueryAttention (validated on a right-padded
    batch, greedy tokens equal to transformers'); other families keep the standard graph."""
    import onnx

    src = make_tiny_decoder(tmp_path / "src", model_type)
    out = export_model(ExportConfig(model=src, out=tmp_path / "art", target="ort"), quiet=True)
    manifest = json.loads((out / "manifest.json").read_text())
    ops = [n.op_type for n in onnx.load(str(out / "model.onnx")).graph.node]
    fused = model_type in ("llama", "qwen2", "mistral")
    assert manifest["export"]["attention"] == ("GroupQueryAttention" if fused else "standard")
    assert (
        (ops.count("GroupQueryAttention") == 2 and "Softmax" not in ops)
        if fused
        else "GroupQueryAttention" not in ops
    )
    if fused:  # RMSNorms fused (the first alone, the rest with their residual Add), QKV and gate/up joined
        layers = 2
        assert manifest["export"]["graph_rewrites"] == {
            "SimplifiedLayerNormalization": 1,
            "SkipSimplifiedLayerNormalization": 2 * layers,
            "merged_qkv_projections": layers,
            "merged_gate_up_projections": layers,
            "nodes": len(ops),
        }
        assert "Pow" not in ops and "Reciprocal" not in ops and ops.count("MatMul") == 4 * layers + 1
        assert ops.count("Split") == layers
    val = manifest["validation"]
    assert (
        val["passed"] and val["greedy_generation"]["identical"] and max(val["max_abs_diff"].values()) <= 1e-4
    )
    assert ("right_padded_batch2" if fused else "left_padded_batch2") in {c["case"] for c in val["cases"]}


@pytest.mark.parametrize("target", ["onnx", "ort"])
def test_beam_search_equals_transformers_beam_search(tmp_path, target):
    """edgekit's beam search on ONNX Runtime gives transformers' tokens: length penalty, the three
    early-stopping modes, no-repeat n-grams; on a model where beams end at EOS at different lengths;
    on the standard graph and on the GroupQueryAttention one."""
    import torch
    import transformers

    from edgekit.models.cache_io import DecoderIO
    from edgekit.runtimes import load_session
    from edgekit.runtimes.generate import GenerationConfig, generate_ids

    src = make_tiny_decoder(tmp_path / "src", "llama", peaked=30)
    out = export_model(ExportConfig(model=src, out=tmp_path / "art", atol=1e-3, target=target), quiet=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(src)).eval()
    session = load_session(out, "ort")
    io = DecoderIO.from_manifest(json.loads((out / "manifest.json").read_text()))
    prompts = ([2, 40, 41, 42], [2, 7, 9], [2, 50, 51, 52, 53, 54])
    outputs = {}
    for extra in BEAM_CONFIGS:
        for prompt in prompts:
            ids = torch.tensor([prompt])
            with torch.inference_mode():
                hf = model.generate(
                    ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=12,
                    do_sample=False,
                    pad_token_id=0,
                    **extra,
                )[0, len(prompt) :].tolist()
            while hf and hf[-1] == 0:
                hf.pop()
            got = generate_ids(
                session, io, prompt, GenerationConfig(max_new_tokens=12, **extra), eos_token_ids=(3,)
            )
            assert got == hf, (extra, prompt)
            outputs[(str(extra), tuple(prompt))] = got
    greedy = [
        generate_ids(session, io, p, GenerationConfig(max_new_tokens=12), eos_token_ids=(3,)) for p in prompts
    ]
    assert greedy != [outputs[(str(BEAM_CONFIGS[0]), tuple(p))] for p in prompts]
    assert any(o[-1] == 3 for o in outputs.values()) and any(len(o) == 12 for o in outputs.values())


def test_static_cache_steps_like_the_growing_one(tmp_path):
    """On the GroupQueryAttention graph, the cache allocated once at full length and bound as past
    and present gives the growing cache's logits at every step, and hands its rows back as plain
    arrays when beams reorder them."""
    from edgekit.models.cache_io import DecoderIO
    from edgekit.runtimes import load_session
    from edgekit.runtimes.generate import CacheStepper

    src = make_tiny_decoder(tmp_path / "src", "llama")
    out = export_model(ExportConfig(model=src, out=tmp_path / "art", target="ort"), quiet=True)
    session = load_session(out, "ort")
    io = DecoderIO.from_manifest(json.loads((out / "manifest.json").read_text()))
    assert io.static_cache
    prompt = [5, 9, 2, 14, 3]
    growing, static = CacheStepper(session, io), CacheStepper(session, io, capacity=len(prompt) + 6)
    a, b = growing.start(prompt), static.start(prompt)
    assert static.static is not None and growing.static is None
    np.testing.assert_allclose(a, b, atol=1e-5)
    for step in range(3):
        token = np.asarray([int(np.argmax(a[0]))])
        a, b = growing.advance(token), static.advance(token)
        np.testing.assert_allclose(a, b, atol=1e-5)
    growing.select(np.array([0, 0]))
    static.select(np.array([0, 0]))  # two rows: back to a growing cache
    assert static.static is None and static.past["past_key_values.0.key"].shape[2] == len(prompt) + 3
    a, b = growing.advance(np.array([7, 8])), static.advance(np.array([7, 8]))
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_fusing_a_graph_with_external_data_replaces_its_data_file(tmp_path):
    """A graph the exporter wrote with its weights beside it (models over 2 GB) is fused in place:
    the old data file goes, the fused graph loads and gives the same logits."""
    import onnx
    import onnxruntime as ort

    from edgekit.export.ort_fusions import fuse_decoder

    src = make_tiny_decoder(tmp_path / "src", "llama")
    out = export_model(ExportConfig(model=src, out=tmp_path / "art", target="ort"), quiet=True)
    graph = tmp_path / "ext" / "model.onnx"
    graph.parent.mkdir()
    model = onnx.load(str(out / "model.onnx"))
    onnx.save(model, str(graph), save_as_external_data=True, location="weights.bin", size_threshold=0)
    fuse_decoder(graph)  # already fused: the rewrite finds nothing, the save is what is checked
    assert not (graph.parent / "weights.bin").exists()
    feeds = {
        i.name: np.ones(
            [1, 3] if "past" not in i.name else [1, 2, 0, 16],
            np.int64 if "past" not in i.name else np.float32,
        )
        for i in ort.InferenceSession(str(graph)).get_inputs()
    }
    a = ort.InferenceSession(str(out / "model.onnx")).run(["logits"], feeds)[0]
    b = ort.InferenceSession(str(graph)).run(["logits"], feeds)[0]
    np.testing.assert_allclose(a, b, atol=1e-6)
