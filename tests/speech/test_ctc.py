"""CTC speech encoders (wav2vec2, HuBERT, WavLM), tiny random models of each family: exported with a
dynamic number of samples, validated against PyTorch, run on real speech (eSpeak NG) on every
backend, transcribed greedily as transformers' own tokenizer decodes, quantized from WAV files
(static and dynamic INT8, ORT and OpenVINO), and long audio read in windows. No real wav2vec2
weights install here, so the transcripts are of random models; the speech is real."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.audio import read_wav, speak, write_wav
from edgekit.errors import InputError
from edgekit.models.ctc import greedy_ids

from ..conftest import run_cli
from .ctc_models import CTC_FAMILIES, make_tiny_ctc

SENTENCES = (
    "the quick brown fox jumps over the lazy dog",
    "small models run fast on edge devices",
    "speech in, letters out",
)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> Path:
    """Three spoken sentences as 16-bit WAV files at eSpeak's 22050 Hz (read back resampled to 16 kHz)."""
    folder = tmp_path_factory.mktemp("speech")
    for i, text in enumerate(SENTENCES):
        samples, rate = speak(text)
        write_wav(folder / f"s{i}.wav", samples, rate)
    return folder


@pytest.fixture(scope="module")
def ctc_exports(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """family -> (model folder, fp32 ONNX artifact)."""
    root = tmp_path_factory.mktemp("ctc")
    out = {}
    for family in CTC_FAMILIES:
        model = make_tiny_ctc(root / family, family)
        result = run_cli("export", "--model", str(model), "--out", str(root / f"{family}-onnx"))
        assert result.returncode == 0, result.stderr
        out[family] = (model, root / f"{family}-onnx")
    return out


def _hf_transcripts(model_dir: Path, files: list[Path]) -> list[str]:
    """What transformers itself transcribes (as its ASR pipeline does): its processor, its model, argmax, its tokenizer's decode."""
    import torch
    from transformers import AutoFeatureExtractor, AutoModelForCTC, AutoTokenizer

    extractor = AutoFeatureExtractor.from_pretrained(str(model_dir))
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCTC.from_pretrained(str(model_dir)).eval()
    texts = []
    for f in files:
        inputs = extractor(read_wav(f, 16000), sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            ids = model(**inputs).logits.argmax(-1)[0]
        texts.append(tokenizer.decode(ids.tolist(), skip_special_tokens=True).strip())
    return texts


@pytest.mark.parametrize("family", CTC_FAMILIES)
def test_family_exports_and_transcribes_like_transformers(ctc_exports, speech, family):
    from edgekit.runtimes.ctc import CtcTranscriber

    model, artifact = ctc_exports[family]
    manifest = json.loads((artifact / "manifest.json").read_text())
    export = manifest["export"]
    assert export["task"] == "automatic-speech-recognition"
    assert [i["name"] for i in export["inputs"]] == (
        ["input_values", "attention_mask"] if family == "wavlm" else ["input_values"]
    )
    assert export["ctc"]["frame_samples"] == 40 and export["ctc"]["blank_token_id"] == 0
    assert max(manifest["validation"]["max_abs_diff"].values()) < 1e-4
    files = sorted(speech.glob("*.wav"))
    ort, torch_ = CtcTranscriber(artifact, "ort"), CtcTranscriber(artifact, "torch")
    for f in files:  # dynamic length: each sentence has its own number of samples
        samples = read_wav(f, 16000)
        got, ref = ort.logits(samples)[0], torch_.logits(samples)[0]
        assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4
    assert [ort.transcribe_file(f).text for f in files] == _hf_transcripts(model, files)


def test_greedy_path_merges_repeats_but_keeps_letters_a_blank_separates():
    letters = [5, 5, 0, 5, 6, 6, 0, 0, 7, 4, 7]  # a a _ a b b _ _ c | c  (0: blank)
    logits = np.full((len(letters), 8), -5.0)
    logits[np.arange(len(letters)), letters] = 5.0
    assert greedy_ids(logits, blank=0) == [5, 5, 6, 7, 4, 7]


def test_int8_from_wav_files(ctc_exports, speech, tmp_path):
    """Static INT8 calibrated on the WAV files (ORT and OpenVINO) and dynamic INT8: each measured
    against fp32 transcripts (character error rate) and each transcribing through generate."""
    _, artifact = ctc_exports["wav2vec2"]
    cases = {
        "ort8": [
            "--target",
            "ort",
            "--precision",
            "int8",
            "--calib",
            str(speech),
            "--eval-data",
            str(speech),
        ],
        "ortdyn": ["--target", "ort", "--precision", "int8-dynamic", "--eval-data", str(speech)],
        "ov8": ["--target", "openvino", "--precision", "int8", "--calib", str(speech)],
    }
    for name, args in cases.items():
        result = run_cli("export", "--model", str(artifact), "--out", str(tmp_path / name), *args)
        assert result.returncode == 0, result.stderr
        manifest = json.loads((tmp_path / name / "manifest.json").read_text())
        quality = manifest["validation"]["quality"]
        assert 0 <= quality["cer_vs_fp32"] <= 1 and quality["drop"] == quality["cer_vs_fp32"]
        assert "character error rate against fp32" in result.stdout
        if manifest["export"]["precision"] == "int8":
            calib = manifest["export"]["quantization"]["calibration"]
            assert calib["kind"] == "audio" and calib["files"] == 3 and calib["samples"] == 3
        if name == "ort8":  # the feature encoder's convolutions too, in QLinearConv's form (output Q)
            import onnx

            assert "Conv" in manifest["export"]["quantization"]["ops"]
            graph = onnx.load(str(tmp_path / name / "model.onnx")).graph
            made = {o: n for n in graph.node for o in n.output}
            convs = [n for n in graph.node if n.op_type == "Conv"]
            assert convs and all(made[n.input[1]].op_type == "DequantizeLinear" for n in convs)
            consumers = [n for n in graph.node for c in convs if c.output[0] in n.input]
            assert consumers and all(n.op_type == "QuantizeLinear" for n in consumers)
        gen = run_cli("generate", str(tmp_path / name), "--audio", str(speech / "s0.wav"))
        assert gen.returncode == 0, gen.stderr
        assert gen.stdout.strip()


def test_long_audio_runs_in_windows(ctc_exports, speech, monkeypatch):
    """A recording longer than the window is read in overlapping windows; the frames kept add up to
    those of one pass, and with context on each side the transcript stays close to one pass's."""
    from edgekit.numerics import error_rate
    from edgekit.runtimes import ctc

    _, artifact = ctc_exports["hubert"]
    samples = np.concatenate([read_wav(f, 16000) for f in sorted(speech.glob("*.wav"))] * 2)
    whole = ctc.CtcTranscriber(artifact, "ort")
    one_pass, windows = whole.logits(samples)
    assert windows == 1
    monkeypatch.setattr(ctc, "WINDOW_S", 4.0)
    monkeypatch.setattr(ctc, "CONTEXT_S", 1.0)
    windowed, windows = whole.logits(samples)
    assert windows == int(np.ceil(len(samples) / (2.0 * 16000)))
    assert abs(len(windowed) - len(one_pass)) <= windows
    text_whole = whole.tokenizer.decode(greedy_ids(one_pass, 0))
    text_windows = whole.tokenizer.decode(greedy_ids(windowed, 0))
    assert len(text_whole) > 100 and error_rate([text_whole], [text_windows]) < 0.5


def test_bad_inputs_name_the_problem(ctc_exports, speech, tmp_path):
    from PIL import Image

    model, artifact = ctc_exports["wav2vec2"]
    photo = tmp_path / "photo.wav"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (tmp_path / "imgs").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "imgs" / "a.png")
    int8 = ["export", "--model", str(model), "--out", str(tmp_path / "x"), "--precision", "int8"]
    cases = [
        (["generate", str(artifact), "--prompt", "hello"], "reads audio, not a text prompt"),
        (["generate", str(artifact), "--audio", str(photo)], "photo.wav' is not a PCM WAV file"),
        (["generate", str(artifact), "--audio", str(speech / "s0.wav"), "--num-beams", "5"], "do not apply"),
        ([*int8, "--calib", str(tmp_path / "imgs")], "holds no WAV files but this model reads audio"),
        (
            ["generate", str(artifact), "--image", str(tmp_path / "imgs" / "a.png")],
            "reads audio, not an image",
        ),
    ]
    pretrained = make_tiny_ctc(tmp_path / "pretrained", "wav2vec2")
    config = json.loads((pretrained / "config.json").read_text())
    (pretrained / "config.json").write_text(
        json.dumps({**config, "architectures": ["Wav2Vec2ForPreTraining"]})
    )
    cases.append(
        (
            ["export", "--model", str(pretrained), "--out", str(tmp_path / "x")],
            "not a model fine-tuned for CTC",
        )
    )
    for args, message in cases:
        result = run_cli(*args)
        assert result.returncode != 0 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def test_wav_calibration_for_a_text_model_is_refused(minilm_dir, speech, tmp_path):
    out = tmp_path / "minilm8"
    args = [
        "export",
        "--model",
        str(minilm_dir),
        "--out",
        str(out),
        "--precision",
        "int8",
        "--calib",
        str(speech),
    ]
    result = run_cli(*args)
    assert result.returncode != 0 and "holds WAV files but this model reads text" in result.stderr, (
        result.stderr
    )
    assert "Traceback" not in result.stderr and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".minilm8")]  # no staging folder left


def test_resampled_audio_reads_the_same_speech(ctc_exports, speech, tmp_path):
    """44.1 kHz and 8 kHz copies of a sentence are resampled to the model's 16 kHz on reading."""
    from edgekit.audio import resample
    from edgekit.runtimes.ctc import CtcTranscriber

    _, artifact = ctc_exports["wav2vec2"]
    samples, rate = speak(SENTENCES[0])
    transcriber = CtcTranscriber(artifact, "ort")
    reference = transcriber.transcribe(resample(samples, rate, 16000))
    for other in (44100, 8000):
        write_wav(tmp_path / f"{other}.wav", resample(samples, rate, other), other)
        got = transcriber.transcribe_file(tmp_path / f"{other}.wav")
        assert abs(got.seconds - reference.seconds) < 0.01
    with pytest.raises(InputError, match="at least 20 ms"):
        transcriber.transcribe(np.zeros(100, np.float32))


def test_openvino_and_tensorrt_take_the_speech_graph(ctc_exports, speech, tmp_path):
    """OpenVINO fp32 gives ORT's transcript (the mask-taking WavLM); the TensorRT folder's profile
    spans 0.1 s to the 20 s window (its engine is built on a GPU device, not here)."""
    from edgekit.runtimes.ctc import CtcTranscriber

    _, artifact = ctc_exports["wavlm"]
    result = run_cli(
        "export", "--model", str(artifact), "--target", "openvino", "--out", str(tmp_path / "ov")
    )
    assert result.returncode == 0, result.stderr
    for f in sorted(speech.glob("*.wav")):
        ov, ort = CtcTranscriber(tmp_path / "ov", "openvino"), CtcTranscriber(artifact, "ort")
        samples = read_wav(f, 16000)
        assert np.abs(ov.logits(samples)[0] - ort.logits(samples)[0]).max() < 1e-3
        assert ov.transcribe(samples).text == ort.transcribe(samples).text
    from edgekit.export.tensorrt import profiles

    inputs = json.loads((artifact / "manifest.json").read_text())["export"]["inputs"]
    shapes = profiles(inputs, 4, 1, 128, 512)
    assert shapes["input_values"] == {"min": [1, 1600], "opt": [1, 160000], "max": [4, 320000]}


def test_bench_times_each_utterance_and_scores_transcripts_against_fp32(ctc_exports, speech, tmp_path):
    _, artifact = ctc_exports["wav2vec2"]
    out = tmp_path / "bench"
    result = run_cli(
        "bench",
        str(artifact),
        "--backend",
        "torch,ort",
        "--repeat",
        "3",
        "--eval-data",
        str(speech),
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    bench = json.loads((out / "bench.json").read_text())
    rows = bench["rows"]
    assert {(r["backend"], r["utterance"]) for r in rows} == {
        (b, f.name) for b in ("torch", "ort") for f in speech.glob("*.wav")
    }
    for r in rows:
        assert r["rtf"] == pytest.approx(r["p50_ms"] / 1e3 / r["audio_s"])
        assert r["audio_s"] == pytest.approx(len(read_wav(speech / r["utterance"], 16000)) / 16000)
        assert r["cer_vs_fp32"] == 0.0 and r["transcript"]  # fp32 ONNX reads what PyTorch reads
    assert "RTF" in (out / "bench.md").read_text() and "WAV files" in bench["audio"]


def test_int8_guard_puts_the_convolutions_back_in_float_first(ctc_exports, speech, tmp_path):
    """When the guard has to keep nodes in float, a speech encoder's quantized convolutions go
    back first, before any MatMul (the guard logs each node it keeps)."""
    import re

    import onnx

    _, artifact = ctc_exports["wav2vec2"]
    out = tmp_path / "guarded"
    result = run_cli(
        "export", "--model", str(artifact), "--target", "ort", "--precision", "int8", "--calib", str(speech),
        "--eval-data", str(speech), "--max-drop", "1e-9", "--max-float-nodes", "1", "--out", str(out), "--verbose",
    )  # fmt: skip
    kept = re.findall(r"keeping (\S+) in float", result.stdout + result.stderr)
    convs = {n.name for n in onnx.load(str(artifact / "model.onnx")).graph.node if n.op_type == "Conv"}
    assert len(kept) == 1 and kept[0] in convs, kept
    assert result.returncode != 0 and "cannot meet --max-drop" in result.stderr and not out.exists()
