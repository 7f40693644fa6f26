"""Issue 19's bad inputs, each through the real CLI or the real reader: the one line, the exit code
and what is left on disk. The table walk at the end takes every registered command."""

from __future__ import annotations

import errno
import json
import logging
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from edgekit.errors import InputError

from .conftest import run_cli
from .test_cli_errors import _assert_clean_failure

LATIN1 = "caf\xe9 au lait\nna\xefve text\n".encode("latin-1")


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def no_tokenizer(tmp_path_factory) -> dict[str, Path]:
    """A tiny BERT and a tiny GPT-2 saved without any tokenizer file."""
    import torch
    import transformers

    root = tmp_path_factory.mktemp("no-tokenizer")
    torch.manual_seed(0)
    bert = transformers.BertConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37
    )
    transformers.BertModel(bert).save_pretrained(root / "bert")
    gpt2 = transformers.GPT2Config(
        vocab_size=100, n_embd=32, n_layer=1, n_head=2, n_positions=64, bos_token_id=0, eos_token_id=0
    )
    transformers.GPT2LMHeadModel(gpt2).save_pretrained(root / "gpt2")
    return {"bert": root / "bert", "gpt2": root / "gpt2"}


@pytest.fixture(scope="module")
def bert_artifact(tiny_models, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bert-artifact") / "a"
    result = run_cli("export", "--model", str(tiny_models("bert")), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


# --- item 5: undecodable text data --------------------------------------------------------------


def test_text_that_is_not_utf8_is_refused_with_its_offset(tmp_path):
    from edgekit.calibration.text import load_texts

    path = tmp_path / "latin1.txt"
    path.write_bytes(LATIN1)
    with pytest.raises(InputError) as err:
        load_texts(path)
    assert "byte 0xe9 at offset 3 (line 1)" in str(err.value) and "--encoding" in str(err.value)
    assert load_texts(path, encoding="latin-1") == ["café au lait", "naïve text"]
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "b.txt").write_bytes(b"fine\n")
    (tmp_path / "folder" / "a.txt").write_bytes(b"ok\nthen \xff")
    with pytest.raises(InputError, match=r"a\.txt' is not UTF-8 text: byte 0xff at offset 8 \(line 2\)"):
        load_texts(tmp_path / "folder")


def test_binary_data_and_unknown_encodings_are_refused(tmp_path):
    from edgekit.calibration.text import load_texts

    path = tmp_path / "blob.txt"
    path.write_bytes(b"PK\x03\x04\x00\x00binary")
    with pytest.raises(InputError, match="is not text: a NUL byte at offset 4"):
        load_texts(path)
    with pytest.raises(InputError, match="unknown --encoding 'latin-9000'"):
        load_texts(path, encoding="latin-9000")


def test_latin1_jsonl_is_blamed_on_its_bytes_not_on_permissions(tmp_path):
    from edgekit.calibration.text import load_labeled

    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(InputError) as err:
        load_labeled(path)
    assert "line 2" in str(err.value) and "permissions" not in str(err.value)
    path.write_bytes(b'{"txt": "no field"}\n')
    with pytest.raises(InputError) as err:
        load_labeled(path)
    assert "has no field 'text'" in str(err.value) and "choose another field" not in str(err.value)


def test_export_refuses_latin1_calibration_before_work_and_reads_it_with_encoding(tiny_models, tmp_path):
    calib = tmp_path / "calib.txt"
    calib.write_bytes(LATIN1 * 4)
    out = tmp_path / "out"
    args = ["export", "--model", str(tiny_models("bert")), "--precision", "int8", "--calib", str(calib)]
    result = run_cli(*args, "--out", str(out))
    _assert_clean_failure(result, "byte 0xe9 at offset 3", "--encoding")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.txt"]
    result = run_cli(*args, "--encoding", "latin-1", "--calib-size", "1000", "--out", str(out))
    assert result.returncode == 0, result.stderr
    calibration = json.loads((out / "manifest.json").read_text())["export"]["quantization"]["calibration"]
    assert calibration["samples"] == 8 and calibration["texts_available"] == 8  # --calib-size capped
    said = " ".join(result.stderr.split())  # rich wraps log lines
    assert "--calib-size 1000:" in said and "calibrating on 8 samples" in said


# --- item 6: --calib-size beyond the data -------------------------------------------------------


def test_calib_size_is_capped_at_each_text_once_at_each_length(tiny_models, caplog):
    from transformers import AutoTokenizer

    from edgekit.calibration.dataset import text_calibration

    folder = tiny_models("bert")
    path = folder.parent / "three.txt"
    path.write_text("the city council voted\nrain is expected\nthe new bridge will carry cyclists\n")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    with caplog.at_level(logging.WARNING, logger="edgekit.calibration"):
        calib = text_calibration(tokenizer, path, ["input_ids", "attention_mask"], 1_000_000, (8, 16))
    assert len(calib.feeds) == 6 and "holds 3 texts" in caplog.text
    pairs = {(f["input_ids"].tobytes(), f["input_ids"].shape[1]) for f in calib.feeds}
    assert len(pairs) == 6 and sorted({length for _, length in pairs}) == [8, 16]


# --- item 4: no tokenizer, or one past the vocabulary -------------------------------------------


def test_export_without_tokenizer_validates_on_seeded_ids_and_says_so(no_tokenizer, tmp_path):
    out = tmp_path / "out"
    result = run_cli("export", "--model", str(no_tokenizer["bert"]), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "seeded random token ids" in result.stdout
    export = json.loads((out / "manifest.json").read_text())["export"]
    assert export["validation_inputs"].startswith("seeded random token ids")
    result = run_cli(
        "export",
        "--model",
        str(no_tokenizer["bert"]),
        "--precision",
        "int8",
        "--calib",
        str(Path(__file__)),
        "--out",
        str(tmp_path / "int8"),
    )
    _assert_clean_failure(result, "has no tokenizer", "INT8 calibration on text")
    assert not (tmp_path / "int8").exists()


def test_seeded_tokenizer_is_deterministic_and_inside_the_vocabulary(no_tokenizer):
    import transformers

    from edgekit.models.tokenizer import SeededTokenizer, load_tokenizer

    config = transformers.AutoConfig.from_pretrained(str(no_tokenizer["gpt2"]))
    tok = load_tokenizer(no_tokenizer["gpt2"], config)
    assert isinstance(tok, SeededTokenizer)
    a = tok(["one two three", "four"], padding=True, return_tensors="np")
    b = SeededTokenizer(config)(["one two three", "four"], padding=True, return_tensors="np")
    assert (a["input_ids"] == b["input_ids"]).all() and a["attention_mask"].tolist()[1][-1] == 0
    ids = a["input_ids"][a["attention_mask"] == 1]
    assert ids.min() >= 1 and ids.max() < 100  # id 0 is bos/eos here: left out
    with pytest.raises(InputError, match="generate needs one"):
        load_tokenizer(no_tokenizer["gpt2"], config, needed_for="generate")


def test_decoder_without_tokenizer_exports_but_generate_asks_for_the_files(no_tokenizer, tmp_path):
    out = tmp_path / "gpt2"
    result = run_cli("export", "--model", str(no_tokenizer["gpt2"]), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "greedy tokens identical to transformers" in result.stdout
    result = run_cli("generate", str(out), "--prompt", "hello")
    _assert_clean_failure(result, "has no tokenizer", "generate needs one", "tokenizer.json")


def test_tokenizer_larger_than_the_vocabulary_is_named(tiny_models, no_tokenizer, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(no_tokenizer["bert"], model)  # vocabulary 100
    for file in tiny_models("bert").glob("tokenizer*"):
        shutil.copy(file, model)  # the tests' tokenizer: more than 100 tokens
    result = run_cli("export", "--model", str(model), "--out", str(tmp_path / "out"))
    _assert_clean_failure(result, "tokens but the model's vocabulary holds 100")
    assert not (tmp_path / "out").exists()


# --- item 9: the rest of "unexpected X" ---------------------------------------------------------


def test_a_prompt_that_is_not_utf8_is_one_line(bert_artifact):
    result = subprocess.run(
        [sys.executable, "-m", "edgekit", "generate", str(bert_artifact), "--prompt", b"caf\xe9"],
        capture_output=True,
        text=True,
    )
    _assert_clean_failure(result, "the prompt is not UTF-8 text: byte 0xe9 at position 3")


def test_out_where_no_folder_can_be_made(tiny_models):
    result = run_cli("export", "--model", str(tiny_models("bert")), "--out", "/proc/edgekit-test/out")
    _assert_clean_failure(result, "cannot create '/proc/edgekit-test/out'")


def test_a_full_disk_says_how_much_was_written_and_where(tmp_path):
    from edgekit.artifacts import staged_output

    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        with staged_output(out, False) as tmp:
            (tmp / "part").write_bytes(b"x" * 3_000_000)
            raise OSError(errno.ENOSPC, "No space left on device")
    assert f"the disk holding '{tmp_path}' is full" in str(err.value) and "3.0 MB" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_damaged_model_file_is_named_before_anything_runs(bert_artifact, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(bert_artifact, broken)
    data = (broken / "model.onnx").read_bytes()
    (broken / "model.onnx").write_bytes(data[: len(data) // 2])
    for command in (["generate", str(broken), "--prompt", "x"], ["bench", str(broken), "--backend", "ort"]):
        result = run_cli(*command)
        _assert_clean_failure(result, "is damaged: model.onnx has", "bytes, its manifest records")
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (broken / "model.onnx").write_bytes(bytes(flipped))
    from edgekit.artifacts import read_manifest, verify_files

    read_manifest(broken)  # same size: only the full check sees it
    with pytest.raises(InputError, match="sha256 of model.onnx differs"):
        verify_files(broken, json.loads((broken / "manifest.json").read_text()), full=True)
    flipped[10:50] = b"\xff" * 40  # the protobuf header: ONNX Runtime cannot parse it
    (broken / "model.onnx").write_bytes(bytes(flipped))
    result = run_cli("bench", str(broken), "--backend", "ort", "--repeat", "1", "--warmup", "0")
    error = result.stderr.strip().splitlines()[-1]  # after the progress line of the loading workers
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert (
        "ONNX Runtime cannot read" in error and "re-create the artifact" in error and "--verbose" not in error
    )


# --- item 10: wrong or late messages ------------------------------------------------------------


@pytest.mark.parametrize(
    "option, needle",
    [
        (["--prompt-len", "0"], "--prompt-len must be >= 1"),
        (["--contexts", "0"], "--contexts needs positive integers"),
        (["--new-tokens", "1"], "--new-tokens must be >= 2"),
    ],
)
def test_bench_generation_options_are_checked_first(bert_artifact, option, needle):
    result = run_cli("bench", str(bert_artifact), "--backend", "torch", *option)
    _assert_clean_failure(result, needle)


def test_build_on_a_file_says_it_is_a_file(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"x")
    result = run_cli("build", str(tmp_path / "model.onnx"))
    _assert_clean_failure(result, "is a file, not an artifact folder")


def test_an_unreadable_image_is_warned_about_once(tmp_path, caplog):
    import numpy as np
    from PIL import Image

    from edgekit.calibration.images import ImagePreprocessor, load_images

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "good.png")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg")
    files = sorted(tmp_path.iterdir())
    pre = ImagePreprocessor(size=(4, 4))
    with caplog.at_level(logging.WARNING, logger="edgekit"):
        for _ in range(2):  # calibration, then evaluation on the same folder
            arrays, skipped = load_images(files, pre)
            assert len(arrays) == 1 and skipped == [str(tmp_path / "bad.jpg")]
    assert caplog.text.count("skipped unreadable image") == 1


# --- the table walk: every command, bad inputs, one line, nothing changed -----------------------


def _bad_inputs(tmp: Path, artifact: Path, model: Path) -> dict[str, list[tuple[list[str], str]]]:
    latin, good = tmp / "latin1.txt", tmp / "good.txt"
    garbage = tmp / "garbage"
    garbage.mkdir(exist_ok=True)
    (garbage / "manifest.json").write_text("[1, 2]")
    labelled = tmp / "labelled.jsonl"
    labelled.write_text("\n".join(f'{{"text": "text {i}", "label": "{"ab"[i % 2]}"}}' for i in range(8)))
    return {
        "export": [
            (["--model", str(tmp / "nope"), "--out", str(tmp / "o")], "does not exist"),
            (["--model", str(model), "--out", str(model)], "--out"),
            (
                [
                    "--model",
                    str(model),
                    "--precision",
                    "int8",
                    "--calib",
                    str(latin),
                    "--out",
                    str(tmp / "o"),
                ],
                "UTF-8",
            ),
            (["--model", str(model), "--opset", "x", "--out", str(tmp / "o")], "--opset"),
            (["--model", str(model), "--target", "tflite", "--out", str(tmp / "o")], "unknown export target"),
        ],
        "distill": [
            (
                [
                    "--teacher",
                    str(model),
                    "--data",
                    str(latin),
                    "--student-layers",
                    "1",
                    "--out",
                    str(tmp / "s"),
                ],
                "UTF-8",
            ),
            (
                ["--teacher", str(model), "--data", str(good), "--student-layers", "1", "--out", str(model)],
                "--out",
            ),
            (
                [
                    "--teacher",
                    str(tmp / "nope"),
                    "--data",
                    str(latin),
                    "--student-layers",
                    "1",
                    "--out",
                    str(tmp / "s"),
                ],
                "does not exist",
            ),
        ],
        "optimize": [  # the last two rows give labelled held-out data, so they fail where they mean to
            (
                [
                    "--model",
                    str(model),
                    "--data",
                    str(latin),
                    "--eval-data",
                    str(good),
                    "--out",
                    str(tmp / "p"),
                ],
                "UTF-8",
            ),
            (
                [
                    "--model",
                    str(model),
                    "--data",
                    str(good),
                    "--eval-data",
                    str(good),
                    "--out",
                    str(tmp / "p"),
                ],
                "needs labels",
            ),
            (
                [
                    "--model",
                    str(model),
                    "--eval-data",
                    str(labelled),
                    "--precisions",
                    "fp32",
                    "--out",
                    str(model),
                ],
                "--out",
            ),
            (
                [
                    "--model",
                    str(tmp / "nope"),
                    "--eval-data",
                    str(labelled),
                    "--data",
                    str(good),
                    "--out",
                    str(tmp / "p"),
                ],
                "does not exist",
            ),
        ],
        "build": [([str(tmp / "nope")], "does not exist"), ([str(garbage)], "not an edgekit manifest")],
        "bench": [
            ([str(artifact), "--batch", "0"], "--batch"),
            ([str(artifact), "--text", str(latin)], "UTF-8"),
            ([str(artifact), "--backend", "onnxruntime"], "unknown backend"),
            ([str(garbage)], "not an edgekit manifest"),
        ],
        "demo": [
            (["--max-steps", "x"], "--max-steps"),
            (["--max-steps", "0", "--out", str(tmp / "demo0")], "--max-steps must be at least 1"),
            (["--new-tokens", "1", "--out", str(tmp / "demo1")], "--new-tokens must be >= 2"),
            (["--out", str(model)], "--overwrite"),
        ],
        "generate": [
            ([str(artifact)], "prompt"),
            ([str(tmp / "nope"), "--prompt", "x"], "does not exist"),
            ([str(artifact), "--prompt", "x", "--max-new-tokens", "0"], "--max-new-tokens"),
        ],
        "backends": [(["--nope"], "No such option")],
        "zero-shot": [
            ([str(artifact), "--labels", "a,b"], "no image given"),
            ([str(artifact), "--image", str(tmp / "x.jpg"), "--labels", "a,b"], "not an image-text artifact"),
            ([str(artifact), "--image", str(tmp / "x.jpg")], "--labels"),
        ],
    }


def test_every_command_walks_a_table_of_bad_inputs(tiny_models, bert_artifact, tmp_path):
    from edgekit.cli import COMMANDS

    model = tmp_path / "model"
    shutil.copytree(tiny_models("bert"), model)
    (tmp_path / "latin1.txt").write_bytes(LATIN1 * 20)
    (tmp_path / "good.txt").write_text("a first text\na second one\n" * 20)
    table = _bad_inputs(tmp_path, bert_artifact, model)
    assert sorted(table) == sorted(name for name, _ in COMMANDS), "every command needs rows here"
    before, artifact_before = _tree(tmp_path), _tree(bert_artifact)
    runs = [(command, args, needle) for command, rows in table.items() for args, needle in rows]
    with ThreadPoolExecutor(2) as pool:  # two interpreters at a time: each is mostly imports
        results = list(pool.map(lambda run: run_cli(run[0], *run[1]), runs))
    for (command, args, needle), result in zip(runs, results):
        print(command, args)
        _assert_clean_failure(result, needle)
    assert _tree(tmp_path) == before
    assert _tree(bert_artifact) == artifact_before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
