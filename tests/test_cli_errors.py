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


def test_export_never_writes_into_or_over_its_input(tiny_models, tmp_path):
    """--out equal to, above or inside the model folder is refused before any work, --overwrite or not."""
    import shutil

    model = tmp_path / "parent" / "model"
    shutil.copytree(tiny_models("bert"), model)
    before = sorted(p.name for p in model.iterdir())
    (tmp_path / "parent" / "notes.txt").write_text("unrelated")
    for out, relation in ((model, "is"), (model.parent, "holds"), (model / "onnx", "lies inside")):
        result = run_cli("export", "--model", str(model), "--out", str(out), "--overwrite")
        _assert_clean_failure(result, relation, "the input")
    assert sorted(p.name for p in model.iterdir()) == before
    assert (tmp_path / "parent" / "notes.txt").read_text() == "unrelated"


def test_overwrite_of_a_folder_edgekit_did_not_write_is_refused(tiny_models, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    result = run_cli("export", "--model", str(tiny_models("bert")), "--out", str(out), "--overwrite")
    _assert_clean_failure(result, "replaces only folders edgekit wrote", "thesis.tex")
    assert [p.name for p in out.iterdir()] == ["thesis.tex"]


def test_sigterm_during_export_leaves_nothing_and_says_so(tiny_models, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "edgekit", "export", "--model", str(tiny_models("bert")), "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.tmp-*")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the export finished before it could be interrupted"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == "interrupted; nothing was written" and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_missing_or_damaged_weights_are_named_in_one_line(tiny_models, tmp_path):
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_models("bert"), model)
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.unlink()
    result = run_cli("export", "--model", str(model), "--out", str(tmp_path / "out"))
    _assert_clean_failure(result, "has config.json but no weights")
    weights.write_bytes(data[: len(data) // 3])
    result = run_cli("export", "--model", str(model), "--out", str(tmp_path / "out"))
    last = result.stderr.strip().splitlines()[-1]  # after the progress lines of the steps that ran
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert last.startswith("error: cannot read the weights in") and "copy them again" in last
    assert not (tmp_path / "out").exists()


def test_library_warnings_stay_off_the_terminal_unless_verbose():
    """torchao, imported by transformers' quantizers, makes torch log a deprecation warning per enum
    it registers ("register_constant ... deprecated"); torch's logging resets its top logger when
    dynamo loads, so the quiet setting must name that logger. Seen, and named, with --verbose."""
    import logging

    from edgekit.cli._common import NOISY_LOGGERS, _setup_logging

    root = logging.getLogger()
    before = (root.level, list(root.handlers), {n: logging.getLogger(n).level for n in NOISY_LOGGERS})
    pytree = logging.getLogger("torch.utils._pytree")
    try:
        import torch._dynamo  # noqa: F401 - what resets the "torch" logger's level

        _setup_logging(verbose=False)
        logging.getLogger("torch").setLevel(logging.WARNING)  # as torch's own log setup leaves it
        assert not pytree.isEnabledFor(logging.WARNING)
        _setup_logging(verbose=True)
        assert pytree.isEnabledFor(logging.WARNING)
    finally:  # the worker's logging as it was, for the tests after this one
        root.setLevel(before[0])
        root.handlers[:] = before[1]
        for name, level in before[2].items():
            logging.getLogger(name).setLevel(level)
