"""edgekit optimize on the other kinds of teacher, each quantized and scored on its own measure:
image-text dual encoders (zero-shot accuracy), CTC speech (transcripts), captioners (captions).
Apart from tests/optimize/test_optimize.py so the two files run on two workers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ..conftest import run_cli


def every_cell_ok(out) -> tuple[dict, dict]:
    results = json.loads((out / "results.json").read_text())
    cells = {c["cell"]: c for c in results["cells"]}
    assert all(c["state"] == "ok" for c in cells.values()), [c.get("error") for c in cells.values()]
    return results, cells


def test_an_image_text_teacher_takes_the_same_command(tmp_path):
    from ..compress.distill.test_image_text import write_digit_pairs
    from ..export.test_dual import make_dual

    teacher, pairs = make_dual(tmp_path / "clip", "clip"), write_digit_pairs(tmp_path, 40)
    out = tmp_path / "opt"
    args = ["--model", str(teacher), "--task", "image-text", "--data", str(pairs), "--eval-data", str(pairs)]
    args += ["--students", "1v1", "--backends", "ort", "--precisions", "fp32,int8", "--no-guard"]
    result = run_cli(
        "optimize", *args, "--max-steps", "3", "--batch", "2", "--repeat", "3", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    results, cells = every_cell_ok(out)
    assert set(cells) == {
        "teacher torch fp32",
        "teacher ort fp32",
        "teacher ort int8",
        "L1V1 ort fp32",
        "L1V1 ort int8",
    }
    assert results["metric"] == "zero_shot_accuracy"  # the pairs have labels
    for c in cells.values():  # a text and an image per pair: both towers timed, their p50 summed
        assert c["p50_ms"] > 0 and c["throughput_per_s"] > 0 and 0 <= c["accuracy"] <= 1
    assert cells["teacher ort fp32"]["relative_quality"] == pytest.approx(1.0)  # the teacher's own weights
    # INT8 without --calib: both towers calibrated on the training pairs, written once into stages/
    (calib,) = (out / "stages").glob("calib-*")
    assert len(list((calib / "images").glob("*.png"))) == 40
    assert len((calib / "captions.txt").read_text().splitlines()) == 40
    distilled = json.loads(next((out / "stages").glob("distill-L1V1-*/manifest.json")).read_text())
    assert distilled["config"]["student_vision_layers"] == 1 and distilled["config"]["student_layers"] == 1
    report = (out / "report.md").read_text()
    assert "pairs/s" in report and "zero-shot acc" in report


def test_a_speech_teacher_is_quantized_and_scored_on_its_transcripts(tmp_path):
    """CTC speech: no students; fp32 and INT8 (calibrated on WAV files, guarded on the held-out
    WAVs' character error rate) on both backends, every file timed whole, quality 1 - CER."""
    from edgekit.audio import speak, write_wav

    from ..speech.ctc_models import make_tiny_ctc

    teacher = make_tiny_ctc(tmp_path / "w2v", "wav2vec2")
    wavs = tmp_path / "wavs"
    wavs.mkdir()
    for i, text in enumerate(("small models on phones", "speech in, letters out")):
        write_wav(wavs / f"s{i}.wav", *speak(text))
    out = tmp_path / "opt"
    args = ["--model", str(teacher), "--task", "speech-ctc", "--eval-data", str(wavs), "--calib", str(wavs)]
    args += ["--backends", "ort,openvino", "--precisions", "fp32,int8", "--max-drop", "0.5", "--repeat", "3"]
    result = run_cli("optimize", *args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    results, cells = every_cell_ok(out)
    assert set(cells) == {"teacher torch fp32"} | {
        f"teacher {b} {p}" for b in ("ort", "openvino") for p in ("fp32", "int8")
    }
    assert (
        results["metric"] == "transcript_agreement"
        and "1 - character error rate" in results["quality_metric"]
    )
    bench = json.loads(next((out / "stages").glob("bench-*/bench.json")).read_text())
    for name, c in cells.items():
        backend = name.split()[1]
        rows = [
            r
            for r in bench["rows"]
            if r["backend"] == backend and r["artifact"] == Path(c.get("artifact", "")).name
        ]
        if backend != "torch":  # the cell's row: both files once, their p50s summed
            assert len(rows) == 2 and c["p50_ms"] == pytest.approx(sum(r["p50_ms"] for r in rows))
        assert c["rtf"] > 0 and c["throughput_per_s"] > 0 and 0 <= c["accuracy"] <= 1
    # the fp32 graphs run the teacher's weights: the same transcripts
    assert cells["teacher ort fp32"]["accuracy"] == cells["teacher openvino fp32"]["accuracy"] == 1.0
    int8 = json.loads(next((out / "stages").glob("export-teacher-ort-int8-*/manifest.json")).read_text())
    assert int8["export"]["quantization"]["calibration"]["kind"] == "audio"
    assert "cer_vs_fp32" in int8["validation"]["quality"]  # the guard judged it on the WAVs' transcripts
    report = (out / "report.md").read_text()
    assert "files/s" in report and "1 - CER" in report and "RTF" in report


def test_a_captioner_teacher_is_quantized_and_scored_on_its_captions(tmp_path):
    """Image captioners: no students; fp32 and int8 (a static INT8 vision encoder calibrated on the
    photos, a weight-only decoder) on ONNX Runtime, timed per caption (encoder, then the greedy
    tokens), quality the token F1 of each cell's captions against the teacher's in PyTorch."""
    from ..conftest import save_photos
    from ..export.captioner_models import make_tiny_captioner

    teacher = make_tiny_captioner(tmp_path / "cap", "gpt2", peaked=25.0)
    (tmp_path / "photos").mkdir()
    photos = save_photos(tmp_path / "photos")
    out = tmp_path / "opt"
    args = [
        "--model",
        str(teacher),
        "--task",
        "image-captioning",
        "--eval-data",
        str(photos),
        "--calib",
        str(photos),
    ]
    args += ["--backends", "ort", "--precisions", "fp32,int8", "--repeat", "3"]
    result = run_cli("optimize", *args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    results, cells = every_cell_ok(out)
    assert set(cells) == {"teacher torch fp32", "teacher ort fp32", "teacher ort int8"}
    assert results["metric"] == "caption_token_f1" and "captions" in results["quality_metric"]
    bench = json.loads(next((out / "stages").glob("bench-*/bench.json")).read_text())
    for name, c in cells.items():
        backend = name.split()[1]
        folder = Path(c.get("artifact", "")).name
        row = next(
            r
            for r in bench["rows"]
            if r["backend"] == backend and (backend == "torch" or r["artifact"] == folder)
        )
        assert c["p50_ms"] == pytest.approx(
            row["ttft_ms"] + (row["new_tokens"] - 1) * row["per_token_p50_ms"]
        )
        assert 0 <= c["accuracy"] <= 1 and c["throughput_per_s"] > 0
    assert cells["teacher ort fp32"]["accuracy"] == 1.0  # the teacher's weights: its captions
    int8 = json.loads(next((out / "stages").glob("export-teacher-ort-int8-*/manifest.json")).read_text())
    assert int8["export"]["quantization"]["encoder"]["calibration"]["kind"] == "image"
    assert "caption ms" in (out / "report.md").read_text()
    refused = run_cli(
        "optimize", *args[:4], "--eval-data", str(photos), "--students", "2", "--out", str(tmp_path / "o2")
    )
    assert refused.returncode != 0 and "does not distil" in refused.stderr and not (tmp_path / "o2").exists()
    from ..conftest import make_tiny_encoder

    encoder = make_tiny_encoder(tmp_path / "bert", "bert")
    wrong = run_cli("optimize", "--model", str(encoder), *args[2:], "--out", str(tmp_path / "o3"))
    assert wrong.returncode != 0 and "takes an image captioner model" in wrong.stderr
    assert "Traceback" not in wrong.stderr and not (tmp_path / "o3").exists()


def _tiny_whisper_with_features(folder: Path) -> Path:
    """The tiny random Whisper of the seq2seq tests at Whisper's own 30 s window (1500 encoder
    positions), saved with a feature extractor of its mel bins, so that WAV files go in."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    from ..export.seq2seq_models import make_tiny_seq2seq

    make_tiny_seq2seq(folder, "whisper")
    config = WhisperConfig.from_pretrained(str(folder))
    config.max_source_positions = 1500
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id, model.generation_config.decoder_start_token_id = 3, 2
    model.save_pretrained(str(folder))
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(str(folder))
    return folder


def test_a_speech_encoder_decoder_is_quantized_and_scored_on_its_transcripts(tmp_path):
    """Whisper teachers: no students, no calibration; fp32 and weight-only int8 (both graphs) on
    ONNX Runtime, timed per transcript, quality the token F1 of each cell's transcripts of the WAV
    files against the teacher's in PyTorch. (Text encoder-decoders take the same path; their
    planning is checked below and their bench scoring in tests/export/test_seq2seq.py.)"""
    from edgekit.audio import speak, write_wav

    teacher, held = _tiny_whisper_with_features(tmp_path / "whisper"), tmp_path / "wavs"
    held.mkdir()
    for i, text in enumerate(("the quick brown fox", "rain later today")):
        samples, rate = speak(text)
        write_wav(held / f"{i}.wav", samples, rate)
    out = tmp_path / "opt"
    args = ["--model", str(teacher), "--task", "automatic-speech-recognition", "--eval-data", str(held)]
    args += ["--students", "none", "--backends", "ort", "--precisions", "fp32,int8", "--repeat", "3"]
    result = run_cli("optimize", *args, "--out", str(out))
    assert result.returncode == 0, result.stderr
    results, cells = every_cell_ok(out)
    assert set(cells) == {"teacher torch fp32", "teacher ort fp32", "teacher ort int8"}
    assert results["metric"] == "transcript_token_f1" and "transcripts" in results["quality_metric"]
    assert cells["teacher ort fp32"]["accuracy"] == 1.0  # the fp32 graphs give the teacher's own tokens
    assert 0 <= cells["teacher ort int8"]["accuracy"] <= 1 and cells["teacher ort int8"]["p50_ms"] > 0
    int8 = json.loads((out / cells["teacher ort int8"]["artifact"] / "manifest.json").read_text())
    quant = int8["export"]["quantization"]  # both graphs weight-only: nothing was calibrated
    assert set(quant) == {"encoder", "decoder"} and "calibration" not in json.dumps(quant)
    assert "transcript ms" in (out / "report.md").read_text()


def test_a_text_encoder_decoder_is_planned_weight_only_and_checked_on_its_kind(tmp_path):
    """--task text2text-generation: weight-only int8/int4 export options without calibration, a
    teacher of another kind refused in one line, the metric and the report's words."""
    from edgekit.optimize.config import OptimizeConfig
    from edgekit.optimize.plan import _target_options

    from ..export.seq2seq_models import make_tiny_seq2seq

    bart = make_tiny_seq2seq(tmp_path / "bart", "bart")
    held = tmp_path / "t.txt"
    held.write_text("the city council voted\nrain is expected later today\n")
    cfg = OptimizeConfig(
        model=bart,
        out=tmp_path / "o",
        task="text2text-generation",
        eval_data=held,
        precisions=("fp32", "int4"),
    ).check()  # no --calib needed
    assert _target_options(cfg, "ort", "int4") == {
        "target": "ort",
        "precision": "int4",
        "seed": 0,
        "task": "seq2seq",
    }
    whisper = _tiny_whisper_with_features(tmp_path / "whisper")
    args = ["--model", str(whisper), "--task", "text2text-generation", "--eval-data", str(held)]
    bad = run_cli("optimize", *args, "--students", "none", "--out", str(tmp_path / "bad"))
    assert bad.returncode != 0 and "takes a text encoder-decoder model" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad").exists()
    wavs = tmp_path / "wavs"  # speech: a file that is no WAV is named before anything is written
    wavs.mkdir()
    (wavs / "notes.wav").write_text("not audio")
    args = ["--model", str(whisper), "--task", "automatic-speech-recognition", "--eval-data", str(wavs)]
    bad = run_cli("optimize", *args, "--students", "none", "--out", str(tmp_path / "bad-wav"))
    assert bad.returncode != 0 and "notes.wav" in bad.stderr and "is not a PCM WAV file" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad-wav").exists()
