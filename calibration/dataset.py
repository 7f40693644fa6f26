"""One calibration set for every backend: model inputs (numpy feeds) built from user text or images.

A set is a list of feeds (one sample each, batch 1), a fingerprint of their exact bytes (the key
of the range cache), and a description for the manifest. Text is tokenised with the model's own
tokenizer, padded to each sequence length the user will run; images go through the model's
preprocessor config (see ``images.py``).
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.calibration.images import IMAGE_SUFFIXES
from edgekit.errors import InputError

log = logging.getLogger("edgekit.calibration")

DEFAULT_SIZE = 128
DEFAULT_SEQ_LENS = (128,)


@dataclass
class CalibrationSet:
    feeds: list[dict[str, Any]]
    kind: str
    """``text`` or ``image``."""
    source: str
    details: dict = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for feed in self.feeds:
            for name in sorted(feed):
                digest.update(name.encode())
                digest.update(str(feed[name].shape).encode())
                digest.update(feed[name].tobytes())
        return digest.hexdigest()

    def manifest(self) -> dict:
        return {
            "kind": self.kind,
            "source": self.source,
            "samples": len(self.feeds),
            "sha256": self.fingerprint,
            **self.details,
        }


def check_calib_path(path: Path | str | None) -> Path:
    """Fail before any work when calibration data is missing or empty."""
    if path is None:
        raise InputError(
            "static INT8 needs calibration data",
            "pass --calib with a text file, a .jsonl file, or a folder of .txt files or images",
        )
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(
            f"calibration data '{path}' does not exist",
            "pass --calib with a text file, a .jsonl file, or a folder of .txt files or images",
        )
    if path.is_file() and path.stat().st_size == 0:
        raise InputError(
            f"calibration data '{path}' is empty", "give a file with at least one non-empty line"
        )
    if path.is_dir() and not any(p.is_file() for p in path.rglob("*")):
        raise InputError(f"calibration folder '{path}' holds no files", "put .txt files or images in it")
    return path


def is_image_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*") if p.is_file())


def text_calibration(
    tokenizer: Any,
    path: Path,
    input_names: list[str],
    size: int = DEFAULT_SIZE,
    seq_lens: tuple[int, ...] = DEFAULT_SEQ_LENS,
    seed: int = 0,
    field_name: str = "text",
    encoding: str | None = None,
) -> CalibrationSet:
    """``size`` samples drawn (seeded) from the texts, spread over ``seq_lens``, each padded to its length."""
    import numpy as np

    from edgekit.calibration.text import load_texts

    check_size(size)
    texts = load_texts(path, field_name, encoding=encoding)
    if size > len(texts) * len(seq_lens):
        log.warning(
            "--calib-size %d: '%s' holds %d texts; calibrating on %d samples (each text once at each --seq-len)",
            size,
            path,
            len(texts),
            len(texts) * len(seq_lens),
        )
        size = len(texts) * len(seq_lens)
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    feeds = []
    for i in range(size):
        # sample i: text order[i % n] at length (i % n + i // n) % lengths, so each (text, length) pair comes once
        text = texts[order[i % len(texts)]]
        seq_len = seq_lens[(i % len(texts) + i // len(texts)) % len(seq_lens)]
        enc = tokenizer(
            [text], padding="max_length", truncation=True, max_length=seq_len, return_tensors="np"
        )
        feeds.append({name: np.ascontiguousarray(enc[name], dtype=np.int64) for name in input_names})
    details = {
        "seq_lens": list(seq_lens),
        "seed": seed,
        "distinct_texts": min(size, len(texts)),
        "texts_available": len(texts),
    }
    return CalibrationSet(feeds, "text", str(path), details)


def image_calibration(
    model_dir: Path, path: Path, input_name: str, size: int = DEFAULT_SIZE, seed: int = 0
) -> CalibrationSet:
    from edgekit.calibration.images import ImagePreprocessor, image_files, load_images

    check_size(size)
    pre = ImagePreprocessor.from_model(model_dir)
    files = image_files(path)
    random.Random(seed).shuffle(files)
    arrays, skipped = load_images(files, pre, limit=size)
    feeds = [{input_name: a[None]} for a in arrays]
    details = {
        "seed": seed,
        "images_available": len(files),
        "skipped": skipped,
        "preprocessing": pre.describe(),
    }
    return CalibrationSet(feeds, "image", str(path), details)


def check_size(size: int) -> None:
    if size < 1:
        raise InputError(f"--calib-size must be at least 1, got {size}", "pass e.g. --calib-size 128")
