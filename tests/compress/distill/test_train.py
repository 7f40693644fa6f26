"""Distillation runs on a tiny teacher through the CLI: the loss goes down, frozen parameters stay
put, a run killed with SIGKILL resumes to exactly the weights of an uninterrupted run, bad input
fails in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ...conftest import add_sentence_transformers_files, make_tiny_encoder, run_cli


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from edgekit.calibration._sample import SAMPLE_PARAGRAPHS

    root = tmp_path_factory.mktemp("distill")
    teacher = make_tiny_encoder(root / "teacher", "bert")
    add_sentence_transformers_files(teacher)
    data = root / "texts.txt"
    data.write_text("\n".join(SAMPLE_PARAGRAPHS * 4))
    return teacher, data


def _args(teacher, data, out, *extra):
    return [
        "distill",
        "--teacher",
        str(teacher),
        "--data",
        str(data),
        "--student-layers",
        "1",
        "--batch-size",
        "4",
        "--seq-len",
        "24",
        "--seed",
        "3",
        "--out",
        str(out),
        *extra,
    ]


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_distillation_lowers_the_loss_and_writes_a_ready_student(setup, tmp_path):
    teacher, data = setup
    out = tmp_path / "student"
    # a narrower student (random init, a learned projection to the teacher's width): plenty to learn
    narrow = ("--student-hidden", "16", "--student-heads", "4", "--student-ffn", "32")
    result = run_cli(
        *_args(teacher, data, out, "--max-steps", "40", "--lr", "3e-3", "--save-every", "20", *narrow)
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "report.json").read_text())
    totals = [h["total"] for h in report["losses"]]
    assert len(totals) == 40 and sum(totals[-5:]) / 5 < 0.5 * sum(totals[:5]) / 5
    m = json.loads((out / "manifest.json").read_text())
    assert (
        m["stage"] == "distill"
        and m["distill"]["layer_map"] == [2]
        and m["distill"]["student"]["built_from_teacher"]["teacher_layers"] == [2]
    )
    assert m["distill"]["projection"] is True and m["seed"] == 3 and report["eval_texts"] > 0
    assert report["student_parameters"] < report["teacher_parameters"]
    assert json.loads((out / "1_Pooling" / "config.json").read_text())["word_embedding_dimension"] == 16
    assert not (tmp_path / "student.work").exists()
    exported = run_cli("export", "--model", str(out), "--out", str(tmp_path / "onnx"))
    assert exported.returncode == 0, exported.stderr


def test_frozen_parameters_do_not_move(setup, tmp_path):
    teacher, data = setup
    out = tmp_path / "frozen"
    result = run_cli(
        *_args(
            teacher,
            data,
            out,
            "--max-steps",
            "5",
            "--lr",
            "1e-2",
            "--freeze",
            "embeddings.word_embeddings.*",
            "--freeze",
            "encoder.layer.0.attention.*",
        )
    )
    assert result.returncode == 0, result.stderr
    student, source = _weights(out), _weights_from_teacher(teacher)
    assert (student["embeddings.word_embeddings.weight"] == source["embeddings.word_embeddings.weight"]).all()
    assert (
        student["encoder.layer.0.attention.self.query.weight"]
        == source["encoder.layer.1.attention.self.query.weight"]
    ).all()
    assert not (
        student["encoder.layer.0.output.dense.weight"] == source["encoder.layer.1.output.dense.weight"]
    ).all()  # trained
    frozen = json.loads((out / "manifest.json").read_text())["distill"]["frozen"]
    assert "embeddings.word_embeddings.weight" in frozen and len(frozen) > 2


def _weights_from_teacher(teacher):
    from safetensors.torch import load_file

    return load_file(str(teacher / "model.safetensors"))


def test_resume_after_sigkill_equals_an_uninterrupted_run(setup, tmp_path):
    teacher, data = setup
    steps = ["--max-steps", "60", "--save-every", "5", "--lr", "1e-3"]
    whole = tmp_path / "whole"
    assert run_cli(*_args(teacher, data, whole, *steps)).returncode == 0
    cut = tmp_path / "cut"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgekit", *_args(teacher, data, cut, *steps)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = tmp_path / "cut.work" / "checkpoint.pt"
    deadline = time.time() + 120
    while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if cut.exists():
        pytest.skip("the run finished before it could be killed")
    assert checkpoint.exists() and not cut.exists()
    again = run_cli(*_args(teacher, data, cut, *steps))
    assert (
        again.returncode != 0 and "--resume" in again.stderr
    )  # the interrupted run is not silently restarted
    resumed = run_cli(*_args(teacher, data, cut, *steps, "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    a, b = _weights(whole), _weights(cut)
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert len(json.loads((cut / "report.json").read_text())["losses"]) == 60


@pytest.mark.parametrize(
    "extra,needle",
    [
        (("--student-layers", "9"), "teacher layers 1..2"),
        (("--task", "token-classification"), "task 'token-classification' is not available"),
        (("--resume",), "no checkpoint"),
        (("--freeze", "no.such.*"), "matches no parameter"),
        (("--layer-map", "list", "--layer-map-list", "1,2"), "needs 1 teacher layers"),
        (("--attn-loss", "l1"), "--attn-loss must be mse or kl"),
    ],
)
def test_bad_inputs_fail_in_one_line(setup, tmp_path, extra, needle):
    teacher, data = setup
    result = run_cli(*_args(teacher, data, tmp_path / "o", "--max-steps", "2", *extra))
    assert result.returncode != 0
    assert needle in result.stderr.strip().splitlines()[-1] and "Traceback" not in result.stderr
    assert not (tmp_path / "o").exists()


def test_missing_and_empty_data(setup, tmp_path):
    teacher, _ = setup
    (tmp_path / "empty.txt").write_text("\n\n")
    result = run_cli(*_args(teacher, tmp_path / "empty.txt", tmp_path / "o"))
    assert result.returncode != 0 and "holds no text" in result.stderr
    result = run_cli("distill", "--teacher", str(teacher), "--out", str(tmp_path / "o"))
    assert result.returncode != 0 and "missing option --data" in result.stderr


def test_config_file_with_command_line_override(setup, tmp_path):
    teacher, data = setup
    cfg = tmp_path / "distill.yaml"
    cfg.write_text(
        f"teacher: {teacher}\ndata: {data}\nstudent_layers: 1\nbatch_size: 4\nseq_len: 16\nmax_steps: 50\n"
    )
    out = tmp_path / "fromfile"
    result = run_cli("distill", "--config", str(cfg), "--max-steps", "3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "manifest.json").read_text())["config"]["max_steps"] == 3
    (tmp_path / "bad.yaml").write_text("teachr: x\n")
    bad = run_cli("distill", "--config", str(tmp_path / "bad.yaml"))
    assert (
        bad.returncode != 0
        and "unknown option 'teachr'" in bad.stderr
        and "did you mean 'teacher'" in bad.stderr
    )


def test_ema_update_by_hand():
    import torch

    from edgekit.compress.distill.distiller import MomentumTeacher

    student = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        student.weight.fill_(1.0)
    ema = MomentumTeacher(student, decay=0.9)
    with torch.no_grad():
        student.weight.fill_(3.0)
    ema.update(student)
    assert ema.model.weight.item() == pytest.approx(0.9 * 1.0 + 0.1 * 3.0)
    ema.update(student)
    assert ema.model.weight.item() == pytest.approx(0.9 * 1.2 + 0.1 * 3.0)
    assert not ema.model.weight.requires_grad


def test_momentum_teacher_run(setup, tmp_path):
    teacher, data = setup
    out = tmp_path / "momentum"
    result = run_cli(
        *_args(teacher, data, out, "--max-steps", "6", "--momentum-teacher", "0.9", "--w-attn", "0")
    )
    assert result.returncode == 0, result.stderr
    losses = json.loads((out / "report.json").read_text())["losses"]
    assert all("momentum" in h for h in losses) and "attn" not in losses[0]
    assert json.loads((out / "manifest.json").read_text())["distill"]["momentum_teacher"] == 0.9
    bad = run_cli(*_args(teacher, data, tmp_path / "x", "--momentum-teacher", "1.5"))
    assert bad.returncode != 0 and "EMA decay in (0, 1)" in bad.stderr


@pytest.fixture(scope="module")
def other_tokenizer_student(tmp_path_factory):
    """A student whose tokenizer has one more token than the teacher's."""
    from transformers import AutoModel, AutoTokenizer

    folder = make_tiny_encoder(tmp_path_factory.mktemp("other") / "student", "bert", seed=5)
    tok = AutoTokenizer.from_pretrained(str(folder))
    tok.add_tokens(["edgekitword"])
    tok.save_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder))
    model.resize_token_embeddings(len(tok))
    model.save_pretrained(str(folder))
    return folder


def test_different_tokenizers_use_output_level_losses_only(setup, other_tokenizer_student, tmp_path):
    teacher, data = setup
    base = [
        "distill",
        "--teacher",
        str(teacher),
        "--data",
        str(data),
        "--student",
        str(other_tokenizer_student),
        "--batch-size",
        "4",
        "--seq-len",
        "24",
        "--max-steps",
        "4",
    ]
    out = tmp_path / "cross"
    result = run_cli(*base, "--out", str(out))
    assert result.returncode == 0, result.stderr
    m = json.loads((out / "manifest.json").read_text())["distill"]
    assert (
        m["same_tokenizer"] is False and m["loss_weights"]["hidden"] == 0 and m["loss_weights"]["pred"] == 1.0
    )
    assert set(json.loads((out / "report.json").read_text())["losses"][0]) >= {"pred", "total"}
    assert "edgekitword" in (out / "tokenizer.json").read_text()  # the student keeps its own tokenizer
    asked = run_cli(*base, "--w-hidden", "1", "--out", str(tmp_path / "no"))
    assert (
        asked.returncode != 0
        and "different tokenizers" in asked.stderr
        and "layer-wise 'hidden'" in asked.stderr
    )


def test_sequence_classification_with_labels(tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, BertConfig

    from edgekit.calibration._sample import SAMPLE_PARAGRAPHS

    from ...conftest import TINY, write_tokenizer

    teacher = tmp_path / "clf"
    teacher.mkdir()
    vocab = write_tokenizer(teacher, ["input_ids", "token_type_ids", "attention_mask"])
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=vocab,
        pad_token_id=0,
        num_labels=3,
        id2label={0: "rain", 1: "sport", 2: "money"},
        label2id={"rain": 0, "sport": 1, "money": 2},
        **TINY,
    )
    AutoModelForSequenceClassification.from_config(config).save_pretrained(str(teacher))
    data = tmp_path / "labelled.jsonl"
    names = ["rain", "sport", "money"]
    data.write_text(
        "\n".join(json.dumps({"text": t, "label": names[i % 3]}) for i, t in enumerate(SAMPLE_PARAGRAPHS * 2))
    )
    out = tmp_path / "student"
    result = run_cli(
        "distill",
        "--teacher",
        str(teacher),
        "--data",
        str(data),
        "--task",
        "sequence-classification",
        "--student-layers",
        "1",
        "--a2",
        "0.5",
        "--temperature",
        "2",
        "--batch-size",
        "4",
        "--seq-len",
        "24",
        "--max-steps",
        "6",
        "--eval-fraction",
        "0.25",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert "held-out accuracy" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert {"pred", "student", "total"} <= set(report["losses"][0]) and 0 <= report["student_accuracy"] <= 1
    assert AutoModelForSequenceClassification.from_pretrained(str(out)).config.num_labels == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "\n".join(json.dumps({"text": t, "label": str(i % 5)}) for i, t in enumerate(SAMPLE_PARAGRAPHS))
    )
    wrong = run_cli(
        "distill",
        "--teacher",
        str(teacher),
        "--data",
        str(bad),
        "--task",
        "sequence-classification",
        "--student-layers",
        "1",
        "--out",
        str(tmp_path / "x"),
    )
    assert wrong.returncode != 0 and "the teacher classifies into 3" in wrong.stderr
    unlabelled = tmp_path / "plain.txt"
    unlabelled.write_text("\n".join(SAMPLE_PARAGRAPHS))
    none = run_cli(
        "distill",
        "--teacher",
        str(teacher),
        "--data",
        str(unlabelled),
        "--task",
        "sequence-classification",
        "--student-layers",
        "1",
        "--out",
        str(tmp_path / "y"),
    )
    assert none.returncode != 0 and "needs labels" in none.stderr


@pytest.mark.parametrize("task", ["masked-lm", "causal-lm"])
def test_language_model_tasks(tmp_path, setup, task):
    import torch
    from transformers import AutoModelForMaskedLM, BertConfig

    from ...conftest import TINY, write_tokenizer
    from ...export.test_decoder_families import make_tiny_decoder

    _, data = setup
    if task == "masked-lm":
        teacher = tmp_path / "mlm"
        teacher.mkdir()
        vocab = write_tokenizer(teacher, ["input_ids", "token_type_ids", "attention_mask"])
        torch.manual_seed(0)
        AutoModelForMaskedLM.from_config(
            BertConfig(vocab_size=vocab, pad_token_id=0, **TINY)
        ).save_pretrained(str(teacher))
    else:
        teacher = make_tiny_decoder(tmp_path / "llama", "llama")
    out = tmp_path / "student"
    args = [
        "distill",
        "--teacher",
        str(teacher),
        "--data",
        str(data),
        "--task",
        task,
        "--student-layers",
        "1",
        "--a2",
        "1",
        "--batch-size",
        "4",
        "--seq-len",
        "24",
        "--max-steps",
        "4",
        "--save-every",
        "2",
        "--out",
        str(out),
    ]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "held-out perplexity" in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["student_perplexity"] > 1 and report["teacher_perplexity"] > 1
    assert {"pred", "student", "hidden"} <= set(report["losses"][0])
    m = json.loads((out / "manifest.json").read_text())["distill"]
    assert m["layer_map"] == [2] and (
        m["loss_weights"]["attn"] == (1.0 if task == "masked-lm" else 0.0)
    )  # Llama layers: attention loss off
    if task == "causal-lm":
        from safetensors.torch import load_file

        s, t = load_file(str(out / "model.safetensors")), load_file(str(teacher / "model.safetensors"))
        q = s[
            "model.layers.0.self_attn.q_proj.weight"
        ]  # started as teacher layer 2 (index 1), then trained 4 steps
        assert (q - t["model.layers.1.self_attn.q_proj.weight"]).norm() < 0.2 * (
            q - t["model.layers.0.self_attn.q_proj.weight"]
        ).norm()


def test_two_processes_under_torchrun_and_bf16_autocast(setup, tmp_path):
    """The multi-GPU path, run here as two CPU processes (gloo): the same command under torchrun."""
    teacher, data = setup
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "edgekit",
        *_args(teacher, data, out, "--max-steps", "3", "--amp", "bf16"),
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    m = json.loads((out / "manifest.json").read_text())["distill"]
    assert m["processes"] == 2 and m["amp"] == "bf16" and m["steps"] == 3
    assert result.stdout.count("wrote ") == 1  # rank 0 alone reports and writes
    odd = subprocess.run(
        [*cmd[:-2], "--batch-size", "3", "--out", str(tmp_path / "odd")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert odd.returncode != 0 and "does not split over 2 processes" in odd.stderr


def test_distill_never_replaces_the_teacher(setup, tmp_path):
    teacher, data = setup
    before = sorted(p.name for p in teacher.iterdir())
    result = run_cli(*_args(teacher, data, teacher, "--max-steps", "2", "--overwrite"))
    assert result.returncode != 0 and "is the input" in result.stderr.strip().splitlines()[-1]
    assert sorted(p.name for p in teacher.iterdir()) == before
    assert not teacher.with_name(teacher.name + ".work").exists()


def test_a_failed_check_leaves_no_work_folder_and_the_rerun_starts(setup, tmp_path):
    teacher, data = setup
    out = tmp_path / "o"
    result = run_cli(*_args(teacher, data, out, "--max-steps", "2", "--student-layers", "9"))
    assert result.returncode != 0 and not out.with_name("o.work").exists()
    out.with_name("o.work").mkdir()  # an empty work folder left by an older edgekit is no interrupted run
    result = run_cli(*_args(teacher, data, out, "--max-steps", "2"))
    assert result.returncode == 0, result.stderr


def test_resume_loads_no_pickle_and_names_a_damaged_checkpoint(setup, tmp_path):
    """A crafted checkpoint.pt whose unpickling would run code is refused (weights_only=True); a
    truncated or empty one is named in one line."""
    import pickle

    teacher, data = setup
    out = tmp_path / "o"
    work = out.with_name("o.work")
    work.mkdir()
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (work / "checkpoint.pt").write_bytes(pickle.dumps({"step": Evil()}))
    for content in (None, b"", b"PK\x03\x04truncated"):
        if content is not None:
            (work / "checkpoint.pt").write_bytes(content)
        result = run_cli(*_args(teacher, data, out, "--max-steps", "2", "--resume"))
        last = result.stderr.strip().splitlines()[-1]
        assert result.returncode != 0 and "is damaged" in last and "--overwrite" in last, result.stderr
        assert "Traceback" not in result.stderr and not marker.exists()
