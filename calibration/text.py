"""Read texts from user data, and tokenise them to fixed shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgekit.calibration._sample import sample_texts
from edgekit.errors import InputError

__all__ = ["load_labeled", "load_texts", "sample_texts", "tokenize_fixed", "tokenize_natural"]


def read_text_file(path: Path, encoding: str | None = None) -> str:
    """A user's text file, decoded strictly: UTF-8 (a BOM is dropped) unless ``encoding`` names
    another. Binary data (NUL bytes) and bytes that do not decode are refused with the offset, so
    replacement characters never pass as text."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read '{path}': {exc.strerror or exc}", "check the path and its permissions"
        ) from exc
    nul = data.find(b"\x00")
    if nul >= 0 and encoding is None:
        raise InputError(
            f"'{path}' is not text: a NUL byte at offset {nul}",
            "pass a text file (one text per line), a .jsonl file or a folder of .txt files",
        )
    name = encoding or "utf-8-sig"
    try:
        return data.decode(name)
    except LookupError as exc:
        raise InputError(f"unknown --encoding '{encoding}'", "pass e.g. --encoding utf-8 or latin-1") from exc
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(
            f"'{path}' is not {encoding or 'UTF-8'} text: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line})",
            "convert it to UTF-8, or pass --encoding with the file's encoding (e.g. --encoding latin-1)",
        ) from exc


def load_texts(
    path: Path | str, field: str = "text", limit: int | None = None, encoding: str | None = None
) -> list[str]:
    """Texts from a ``.txt`` file (one per line), a ``.jsonl`` file (``field`` of each record),
    or a folder of ``.txt`` files (one per file, searched recursively). Blank lines are skipped.
    Files are decoded strictly (see ``read_text_file``)."""
    texts = _load(Path(path).expanduser(), field, encoding)[0]
    return texts[:limit] if limit else texts


def _load(path: Path, field: str, encoding: str | None) -> tuple[list[str], list]:
    """(texts, records or class folders); records only for .jsonl, folders only for folders."""
    if not path.exists():
        raise InputError(
            f"text data '{path}' does not exist", "pass a .txt file, a .jsonl file or a folder of .txt files"
        )
    texts: list[str] = []
    extra: list = []
    if path.is_dir():
        for file in sorted(path.rglob("*.txt")):
            content = read_text_file(file, encoding).strip()
            if content:
                texts.append(content)
                extra.append(file.parent)
    elif path.suffix == ".jsonl":
        for lineno, line in enumerate(read_text_file(path, encoding).splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(
                    f"{path}:{lineno} is not valid JSON ({exc.msg})", "fix the line or remove it"
                ) from exc
            if not isinstance(record, dict) or field not in record:
                raise InputError(
                    f"{path}:{lineno} has no field '{field}'", f"give each record a '{field}' field"
                )
            texts.append(str(record[field]))
            extra.append(record)
    else:
        texts = [line.strip() for line in read_text_file(path, encoding).splitlines() if line.strip()]
    if not texts:
        raise InputError(f"text data '{path}' holds no text", "give a file with at least one non-empty line")
    return texts, extra


def tokenize_fixed(
    tokenizer: Any, texts: list[str], batch: int, seq_len: int, input_names: list[str], offset: int = 0
) -> dict[str, Any]:
    """``batch`` texts (cycling through ``texts`` from ``offset``) padded/truncated to exactly
    ``seq_len`` tokens, as int64 numpy arrays keyed by the model's input names."""
    import numpy as np

    chosen = [texts[(offset + i) % len(texts)] for i in range(batch)]
    enc = tokenizer(chosen, padding="max_length", truncation=True, max_length=seq_len, return_tensors="np")
    return {name: np.ascontiguousarray(enc[name], dtype=np.int64) for name in input_names}


def tokenize_natural(
    tokenizer: Any, texts: list[str], input_names: list[str], max_length: int | None = None
) -> dict[str, Any]:
    """Texts padded to the longest of them (a real padded batch)."""
    import numpy as np

    enc = tokenizer(
        texts, padding=True, truncation=max_length is not None, max_length=max_length, return_tensors="np"
    )
    return {name: np.ascontiguousarray(enc[name], dtype=np.int64) for name in input_names}


def load_labeled(
    path: Path | str, field: str = "text", label_field: str = "label", encoding: str | None = None
) -> tuple[list[str], list[str] | None]:
    """Texts and, where the data gives them, labels: the ``label_field`` of .jsonl records, or the
    class subfolder of each .txt file in a folder of subfolders. Otherwise labels are None."""
    path = Path(path).expanduser()
    texts, extra = _load(path, field, encoding)
    if path.is_dir():
        if all(p != path for p in extra):
            return texts, [p.relative_to(path).parts[0] for p in extra]
        return texts, None
    if path.suffix == ".jsonl" and all(label_field in r for r in extra):
        return texts, [str(r[label_field]) for r in extra]
    return texts, None
