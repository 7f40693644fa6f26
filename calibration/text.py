"""Read texts from user data, and tokenise them to fixed shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgekit.calibration._sample import sample_texts
from edgekit.errors import InputError

__all__ = ["load_labeled", "load_texts", "sample_texts", "tokenize_fixed", "tokenize_natural"]


def load_texts(path: Path | str, field: str = "text", limit: int | None = None) -> list[str]:
    """Texts from a ``.txt`` file (one per line), a ``.jsonl`` file (``field`` of each record),
    or a folder of ``.txt`` files (one per file, searched recursively). Blank lines are skipped."""
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(
            f"text data '{path}' does not exist", "pass a .txt file, a .jsonl file or a folder of .txt files"
        )
    texts: list[str] = []
    try:
        if path.is_dir():
            for file in sorted(path.rglob("*.txt")):
                content = file.read_text(encoding="utf-8", errors="replace").strip()
                if content:
                    texts.append(content)
        elif path.suffix == ".jsonl":
            for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
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
                        f"{path}:{lineno} has no field '{field}'",
                        "give each record that field, or choose another field",
                    )
                texts.append(str(record[field]))
        else:
            texts = [
                line.strip()
                for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
                if line.strip()
            ]
    except (OSError, UnicodeError) as exc:
        raise InputError(
            f"cannot read text data '{path}': {exc}", "check the path and its permissions"
        ) from exc
    if not texts:
        raise InputError(f"text data '{path}' holds no text", "give a file with at least one non-empty line")
    return texts[:limit] if limit else texts


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
    path: Path | str, field: str = "text", label_field: str = "label"
) -> tuple[list[str], list[str] | None]:
    """Texts and, where the data gives them, labels: the ``label_field`` of .jsonl records, or the
    class subfolder of each .txt file in a folder of subfolders. Otherwise labels are None."""
    path = Path(path).expanduser()
    texts = load_texts(path, field)
    if path.is_dir():
        files = [
            f for f in sorted(path.rglob("*.txt")) if f.read_text(encoding="utf-8", errors="replace").strip()
        ]
        parents = [f.parent for f in files]
        if all(p != path for p in parents):
            return texts, [p.relative_to(path).parts[0] for p in parents]
        return texts, None
    if path.suffix == ".jsonl":
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if all(label_field in r for r in records):
            return texts, [str(r[label_field]) for r in records]
    return texts, None
