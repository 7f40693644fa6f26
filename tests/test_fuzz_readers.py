"""Every reader edgekit owns, fed random bytes and truncated or bit-flipped copies of valid files:
each call gives a result or edgekit's one-line error, never another exception. Seeded, so a
failure reproduces."""

from __future__ import annotations

import json
import random
import shutil
import struct
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from edgekit.errors import EdgekitError

CASES = 120


def _mutations(valid: bytes, rng: random.Random) -> list[bytes]:
    """Random bytes, truncations at random points, bit flips, and a few fixed edge cases."""
    out = [b"", b"\x00", valid[:1], valid[: len(valid) // 2], valid + b"\xff" * 7]
    for _ in range(CASES):
        pick = rng.random()
        if pick < 0.3:
            out.append(bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 200))))
        elif pick < 0.6:
            out.append(valid[: rng.randint(0, len(valid))])
        else:
            data = bytearray(valid)
            for _ in range(rng.randint(1, 6)):
                i = rng.randrange(len(data))
                data[i] ^= 1 << rng.randrange(8)
            out.append(bytes(data))
    return out


def _fuzz(read: Callable[[Path], object], valid: bytes, path: Path, seed: int) -> int:
    """Feed every mutation to ``read``; returns how many were refused with edgekit's error."""
    refused = 0
    for i, data in enumerate(_mutations(valid, random.Random(seed))):
        path.write_bytes(data)
        try:
            read(path)
        except EdgekitError as exc:
            assert str(exc).strip() and "\n" not in str(exc), (i, str(exc))
            refused += 1
        except Exception as exc:  # noqa: BLE001 - what the test is for
            pytest.fail(f"mutation {i} ({len(data)} bytes) of {path.name}: {type(exc).__name__}: {exc}")
    return refused


def test_text_and_jsonl_readers(tmp_path):
    from edgekit.calibration.text import load_labeled, load_texts

    text = "first line of text\nsecond line, café\n".encode()
    assert _fuzz(load_texts, text, tmp_path / "data.txt", 1) > 0
    jsonl = b'{"text": "a caption", "label": "x"}\n{"text": "another", "label": "y"}\n'
    assert _fuzz(load_labeled, jsonl, tmp_path / "data.jsonl", 2) > 0


def test_manifest_reader(tmp_path):
    from edgekit.artifacts import read_manifest

    folder = tmp_path / "artifact"
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"x" * 10)
    manifest = {"stage": "export", "export": {"task": "x"}, "files": {"model.onnx": {"bytes": 10}}}
    valid = json.dumps(manifest).encode()
    assert _fuzz(lambda p: read_manifest(p.parent), valid, folder / "manifest.json", 3) > 0


def test_wav_reader(tmp_path):
    from edgekit.audio import read_wav, write_wav

    write_wav(tmp_path / "ok.wav", np.sin(np.arange(800, dtype=np.float32) / 5), 8000)
    valid = (tmp_path / "ok.wav").read_bytes()
    assert len(read_wav(tmp_path / "ok.wav")) == 1600
    header_only = bytearray(valid)
    struct.pack_into("<H", header_only, 34, 40)  # 40 bits a sample: no PCM reader takes it
    (tmp_path / "odd.wav").write_bytes(bytes(header_only))
    assert _fuzz(read_wav, valid, tmp_path / "fuzz.wav", 4) > 0


def test_image_reader(tmp_path):
    from PIL import Image

    from edgekit.calibration.images import ImagePreprocessor, load_images

    Image.fromarray(np.arange(16 * 16 * 3, dtype=np.uint8).reshape(16, 16, 3)).save(tmp_path / "ok.png")
    valid = (tmp_path / "ok.png").read_bytes()
    pre = ImagePreprocessor(size=(8, 8))
    _fuzz(lambda p: load_images([p], pre), valid, tmp_path / "fuzz.png", 5)


def test_ctranslate2_reader(tmp_path):
    from edgekit.models.ctranslate2 import read_ct2

    def s(value: str) -> bytes:
        raw = value.encode() + b"\x00"
        return struct.pack("<H", len(raw)) + raw

    weights = np.arange(6, dtype=np.float32).tobytes()
    valid = (
        struct.pack("<I", 6)
        + s("WhisperSpec")
        + struct.pack("<II", 3, 1)
        + s("encoder/w")
        + struct.pack("<BII", 2, 2, 3)
        + struct.pack("<BI", 0, len(weights))
        + weights
        + struct.pack("<I", 0)
    )
    (tmp_path / "ok.bin").write_bytes(valid)
    model = read_ct2(tmp_path / "ok.bin")
    assert model.variables["encoder/w"].shape == (2, 3)
    assert _fuzz(read_ct2, valid, tmp_path / "model.bin", 6) > 0


def test_checkpoint_reader(tmp_path):
    import torch

    from edgekit.compress.distill.checkpoint import _load

    keys = ("config_key", "student", "optimizer", "scheduler", "rng", "history")
    torch.save({"step": 3, **{k: {"w": torch.ones(4)} for k in keys}}, tmp_path / "ok.pt")
    valid = (tmp_path / "ok.pt").read_bytes()
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(tmp_path / "ok.pt", work / "checkpoint.pt")
    assert _load(work / "checkpoint.pt")["step"] == 3
    assert _fuzz(_load, valid, work / "checkpoint.pt", 7) > 0


def test_image_text_pairs_reader(tmp_path):
    """The .jsonl pairs file, and the images it names, each mutated in turn."""
    from PIL import Image

    from edgekit.calibration.pairs import load_pairs

    Image.fromarray(np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)).save(tmp_path / "a.png")
    valid = b'{"image": "a.png", "text": "a red square", "label": "red"}\n{"image": "a.png", "caption": "again", "label": "red"}\n'
    (tmp_path / "ok.jsonl").write_bytes(valid)
    pairs = load_pairs(tmp_path / "ok.jsonl")
    assert pairs.texts == ["a red square", "again"] and pairs.labels == ["red", "red"]
    assert _fuzz(load_pairs, valid, tmp_path / "pairs.jsonl", 8) > 0
    image = (tmp_path / "a.png").read_bytes()
    assert _fuzz(lambda p: load_pairs(tmp_path / "ok.jsonl"), image, tmp_path / "a.png", 9) > 0
