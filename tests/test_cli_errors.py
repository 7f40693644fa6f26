"""Bad input: one line saying what was wrong and what to do, non-zero exit, no traceback, nothing written."""

from __future__ import annotations

from .conftest import run_cli


def _assert_clean_failure(result, *needles: str):
    assert result.returncode != 0, result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_missing_model_folder(tmp_path):
    result = run_cli("export", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    _assert_clean_failure(result, "does not exist", "--model")
    assert not (tmp_path / "out").exists()


def test_folder_without_config(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("export", "--model", str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    _assert_clean_failure(result, "no config.json")
    assert not (tmp_path / "out").exists()


def test_unknown_target(tiny_models, tmp_path):
    result = run_cli(
        "export", "--model", str(tiny_models("bert")), "--target", "onnxx", "--out", str(tmp_path / "out")
    )
    _assert_clean_failure(result, "unknown export target 'onnxx'", "did you mean 'onnx'")
    assert not (tmp_path / "out").exists()


def test_unsupported_architecture(tmp_path):
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text('{"model_type": "bertt"}')
    result = run_cli("export", "--model", str(tmp_path / "m"), "--out", str(tmp_path / "out"))
    _assert_clean_failure(result, "model type 'bertt'", "did you mean 'bert'")


def test_existing_out_without_overwrite_is_left_alone(tiny_models, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_cli("export", "--model", str(tiny_models("bert")), "--out", str(out))
    _assert_clean_failure(result, "already exists", "--overwrite")
    assert (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_out_under_a_file_is_unwritable(tiny_models, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("export", "--model", str(tiny_models("bert")), "--out", str(blocker / "out"))
    _assert_clean_failure(result, "not writable")
    assert blocker.read_text() == "x"


def test_unknown_backend(minilm_artifact, tmp_path):
    result = run_cli("bench", str(minilm_artifact), "--backend", "onnxruntime", "--out", str(tmp_path / "b"))
    _assert_clean_failure(result, "unknown backend 'onnxruntime'", "available")
    assert not (tmp_path / "b").exists()


def test_bench_on_a_folder_that_is_not_an_artifact(tmp_path):
    result = run_cli("bench", str(tmp_path), "--backend", "ort")
    _assert_clean_failure(result, "manifest.json", "edgekit export")


def test_bench_bad_batch_list(minilm_artifact):
    result = run_cli("bench", str(minilm_artifact), "--batch", "1,x")
    _assert_clean_failure(result, "--batch")


def test_bench_sequence_longer_than_model(minilm_artifact):
    result = run_cli("bench", str(minilm_artifact), "--seq-len", "4096")
    _assert_clean_failure(result, "--seq-len reach 4096 tokens", "512")


def test_verbose_shows_the_traceback(tmp_path):
    result = run_cli("export", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "out"), "--verbose")
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "error: model folder" in result.stderr


def test_validation_failure_writes_nothing(tiny_models, tmp_path):
    # An impossible tolerance makes validation fail: the export must leave nothing behind.
    result = run_cli(
        "export", "--model", str(tiny_models("bert")), "--out", str(tmp_path / "out"), "--atol", "1e-30"
    )
    assert result.returncode == 3
    assert "differs from PyTorch" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_int8_bad_inputs_fail_before_any_work(tiny_models, tmp_path):
    model = str(tiny_models("bert"))
    out = str(tmp_path / "out")
    texts = tmp_path / "t.txt"
    texts.write_text("one line of text\n")
    cases = [
        (("--target", "ort", "--precision", "int8"), ("static INT8 needs calibration data", "--calib")),
        (
            ("--target", "ort", "--precision", "int8", "--calib", str(tmp_path / "none.txt")),
            ("calibration data", "does not exist"),
        ),
        (
            ("--target", "ort", "--precision", "int8", "--calib", str(texts), "--calib-method", "entopy"),
            ("unknown calibration method 'entopy'", "did you mean 'entropy'"),
        ),
        (
            ("--target", "ort", "--precision", "int8", "--calib", str(texts), "--max-drop", "0.01"),
            ("--max-drop needs held-out data", "--eval-data"),
        ),
        (
            ("--target", "ort", "--precision", "int8", "--calib", str(texts), "--smooth-quant", "2"),
            ("--smooth-quant must be between 0 and 1",),
        ),
        (("--target", "ort", "--precision", "int8-dynamic", "--calib", str(texts)), ("reads no --calib",)),
        (("--target", "ort", "--calib", str(texts)), ("--calib applies only to INT8 exports",)),
        (
            ("--target", "openvino", "--precision", "int8-dynamic"),
            ("--precision int8-dynamic is not available for --target openvino",),
        ),
        (
            (
                "--target",
                "ort",
                "--precision",
                "int8",
                "--calib",
                str(texts),
                "--eval-data",
                str(tmp_path / "nope.jsonl"),
            ),
            ("--eval-data", "does not exist"),
        ),
        (("--target", "trt", "--precision", "fp16", "--max-batch", "0"), ("--max-batch must be at least 1",)),
        (("--target", "ort", "--precision", "int4"), ("int4 is weight-only, for decoders",)),
    ]
    for args, needles in cases:
        result = run_cli("export", "--model", model, "--out", out, *args)
        _assert_clean_failure(result, *needles)
        assert not (tmp_path / "out").exists()
    (tmp_path / "empty.txt").write_text("")
    result = run_cli(
        "export",
        "--model",
        model,
        "--out",
        out,
        "--target",
        "ort",
        "--precision",
        "int8",
        "--calib",
        str(tmp_path / "empty.txt"),
    )
    _assert_clean_failure(result, "is empty")


def test_bench_eval_data_must_exist(minilm_artifact, tmp_path):
    result = run_cli(
        "bench",
        str(minilm_artifact),
        "--backend",
        "ort",
        "--eval-data",
        str(tmp_path / "missing.jsonl"),
        "--out",
        str(tmp_path / "b"),
    )
    _assert_clean_failure(result, "--eval-data", "does not exist")
    assert not (tmp_path / "b").exists()
