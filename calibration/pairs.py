"""Image-text pairs: what ``edgekit bench --eval-data`` and ``edgekit distill --task image-text``
read for image-text models.

Two layouts:

- a ``.jsonl`` file, one record per line: ``{"image": "photos/cat.jpg", "text": "a cat on a
  sofa", "label": "cat"}``; ``caption`` is taken where ``text`` is missing, ``label`` is optional
  (every record or none), image paths are relative to the file's folder;
- a folder of images, each with a caption in a ``.txt`` file of the same name beside it
  (``cat.jpg`` + ``cat.txt``); images in class subfolders (``cats/cat.jpg``) get the subfolder as
  their label. An image without a caption is an error, not skipped: a pair set is small and exact.

Images are opened here, once, so a file pillow cannot read fails before any model is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.calibration.images import IMAGE_SUFFIXES, open_image
from edgekit.calibration.text import read_text_file
from edgekit.errors import InputError

PAIRS_HELP = (
    'pass a .jsonl file of {"image": ..., "text": ..., "label": ...} records, or a folder of '
    "images each with a .txt caption of the same name"
)


@dataclass(frozen=True)
class Pairs:
    images: list[Any]
    """PIL images, in the order of the records."""
    texts: list[str]
    labels: list[str] | None
    names: list[str]
    """Where each image came from (its path), for messages and reports."""

    def __len__(self) -> int:
        return len(self.texts)


def load_pairs(path: Path | str, encoding: str | None = None, limit: int | None = None) -> Pairs:
    """The pairs in ``path`` (a .jsonl file or a folder), at most ``limit`` of them; bad input raises
    ``InputError`` naming the file and line."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"image-text pairs '{path}' do not exist", PAIRS_HELP)
    if path.is_dir():
        records = _folder_records(path, encoding)
    elif path.suffix == ".jsonl":
        records = _jsonl_records(path, encoding)
    else:
        raise InputError(f"image-text pairs '{path}' are neither a .jsonl file nor a folder", PAIRS_HELP)
    records = records[:limit] if limit else records
    if not records:
        raise InputError(f"image-text pairs '{path}' hold no pair", PAIRS_HELP)
    with_label = [r for r in records if r[2] is not None]
    if with_label and len(with_label) != len(records):
        raise InputError(
            f"'{path}': {len(with_label)} of {len(records)} pairs have a label",
            "give every pair a label, or none",
        )
    return Pairs(
        images=[open_image(image, where) for image, _, _, where in records],
        texts=[text for _, text, _, _ in records],
        labels=[r[2] for r in records] if with_label else None,
        names=[str(image) for image, _, _, _ in records],
    )


def is_pairs(path: Path | str) -> bool:
    """Whether ``path`` is laid out as image-text pairs: a .jsonl file, or a folder with an image
    that has a caption file beside it (a folder of images alone is not)."""
    path = Path(path).expanduser()
    if path.is_file():
        return path.suffix == ".jsonl"
    return path.is_dir() and any(
        p.suffix.lower() in IMAGE_SUFFIXES and p.with_suffix(".txt").is_file() for p in path.rglob("*")
    )


def _jsonl_records(path: Path, encoding: str | None) -> list[tuple[Path, str, str | None, str]]:
    records = []
    for lineno, line in enumerate(read_text_file(path, encoding).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where} is not valid JSON ({exc.msg})", "fix the line or remove it") from exc
        if not isinstance(record, dict):
            raise InputError(f"{where} is not a JSON object", PAIRS_HELP)
        image, text = record.get("image"), record.get("text", record.get("caption"))
        if not isinstance(image, str) or not image.strip():
            raise InputError(f"{where} has no 'image' path", "give each record an 'image' field")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where} has no 'text' (or 'caption')", "give each record a 'text' field")
        label = record.get("label")
        records.append((path.parent / image, text.strip(), None if label is None else str(label), where))
    return records


def _folder_records(folder: Path, encoding: str | None) -> list[tuple[Path, str, str | None, str]]:
    images = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    records = []
    for image in images:
        caption = image.with_suffix(".txt")
        if not caption.is_file():
            raise InputError(
                f"image '{image}' has no caption file '{caption.name}' beside it",
                "write its caption into a .txt file of the same name, or move the image out",
            )
        text = read_text_file(caption, encoding).strip()
        if not text:
            raise InputError(f"caption file '{caption}' is empty", "write the image's caption into it")
        nested = image.parent != folder
        label = image.parent.relative_to(folder).parts[0] if nested else None
        records.append((image, text, label, str(caption)))
    if records and len({r[2] is None for r in records}) > 1:
        raise InputError(
            f"'{folder}' mixes images in class subfolders with images at its top",
            "put every image in a class subfolder, or none",
        )
    return records
