"""A model folder's tokenizer, checked: present (transformers 5 otherwise hands back a placeholder
that tokenises everything to nothing or to [UNK]) and within the model's vocabulary.

Where a folder has no tokenizer, graphs are still validated, on seeded random token ids drawn from
the config's vocabulary (``SeededTokenizer``), and the manifest says so; what needs real text
(generation, text calibration, distillation, quality on held-out text) asks for the files instead.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from edgekit.errors import InputError

log = logging.getLogger("edgekit")

TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "source.spm",
    "vocab.model",
)
"""Files that hold a vocabulary; a folder with none of them has no tokenizer."""
SEEDED_INPUTS = "seeded random token ids from the config's vocabulary (the folder has no tokenizer files)"


def has_tokenizer(folder: Path) -> bool:
    return any((Path(folder) / name).is_file() for name in TOKENIZER_FILES)


def missing_tokenizer(folder: Path, needed_for: str) -> InputError:
    return InputError(
        f"'{folder}' has no tokenizer (none of {', '.join(TOKENIZER_FILES[:4])}, ...), and {needed_for} needs one",
        "copy the model's tokenizer files (e.g. tokenizer.json and tokenizer_config.json) into the folder",
    )


def _value(config: Any, key: str) -> Any:
    return config.get(key) if isinstance(config, dict) else getattr(config, key, None)


def load_tokenizer(folder: Path, config: Any = None, needed_for: str | None = None, seed: int = 0) -> Any:
    """The folder's tokenizer, checked against the vocabulary of ``config`` (a transformers config
    or the dict of config.json; None: the folder's config.json). Without tokenizer files:
    ``SeededTokenizer`` when ``needed_for`` is None, else one line naming what is missing."""
    from transformers import AutoTokenizer

    folder = Path(folder)
    if config is None and (folder / "config.json").is_file():
        from edgekit.artifacts import read_json

        config = read_json(folder / "config.json", "fix the file")
    vocab = _value(config, "vocab_size") if config is not None else None
    if not has_tokenizer(folder):
        if needed_for is not None or not vocab:
            raise missing_tokenizer(folder, needed_for or "a model without vocab_size in its config")
        return SeededTokenizer(config, seed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(
            f"cannot load a tokenizer from '{folder}': {exc}".splitlines()[0],
            "the folder needs its tokenizer files",
        ) from exc
    base = getattr(tokenizer, "vocab_size", None) or len(tokenizer)
    if vocab and base > vocab:
        raise InputError(
            f"the tokenizer in '{folder}' has {base} tokens but the model's vocabulary holds {vocab}: ids from {vocab} on have no embedding",
            "use the tokenizer that came with the model",
        )
    if vocab and len(tokenizer) > vocab:
        log.warning(
            "the tokenizer in %s adds tokens past the model's vocabulary (ids %d..%d have no embedding); text that holds them cannot run",
            folder,
            vocab,
            len(tokenizer) - 1,
        )
    return tokenizer


def check_tokenizer(folder: Path, text_data: dict[str, Any] | None = None) -> None:
    """Before any work: a tokenizer the folder has loads and fits the vocabulary of its config.json;
    and where it has none, no option in ``text_data`` (what needs text -> the path given, or None)
    was given."""
    folder = Path(folder).expanduser()
    if not has_tokenizer(folder):
        for needs, data in (text_data or {}).items():
            if data is not None:
                raise missing_tokenizer(folder, needs)
    elif (folder / "config.json").is_file():
        load_tokenizer(folder)


def is_seeded(tokenizer: Any) -> bool:
    return isinstance(tokenizer, SeededTokenizer)


class SeededTokenizer:
    """Stands in for a missing tokenizer in validation: each text becomes ids drawn from the
    vocabulary (special ids left out) with a generator seeded by the text and ``seed``, about 1.3 ids
    a word; padding, truncation and tensor types as a transformers tokenizer gives them."""

    model_input_names = ["input_ids", "token_type_ids", "attention_mask"]
    padding_side = "right"
    chat_template = None

    def __init__(self, config: Any, seed: int = 0):
        self.vocab_size = int(_value(config, "vocab_size"))
        self.seed = seed
        self.pad_token_id = _value(config, "pad_token_id")
        special = {_value(config, f"{t}_token_id") for t in ("pad", "bos", "eos", "decoder_start")}
        self._special = {int(i) for i in special if isinstance(i, int)}
        self.eos_token_id = _value(config, "eos_token_id")
        self.model_max_length = int(_value(config, "max_position_embeddings") or 1 << 30)

    def __len__(self) -> int:
        return self.vocab_size

    def _ids(self, text: str) -> list[int]:
        import numpy as np

        digest = hashlib.sha256(f"{self.seed}:{text}".encode()).digest()
        rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
        count = max(2, round(1.3 * len(text.split())))
        low = 1 + max((i for i in self._special if i < 8), default=-1)
        ids = rng.integers(low, self.vocab_size, size=count).tolist()
        return [i if i not in self._special else low for i in ids]

    def __call__(self, text, padding=False, truncation=False, max_length=None, return_tensors=None, **_):
        single = isinstance(text, str)
        rows = [self._ids(t) for t in ([text] if single else text)]
        if truncation and max_length:
            rows = [r[:max_length] for r in rows]
        width = max(len(r) for r in rows)
        if padding == "max_length" and max_length:
            width = max_length
        pad = self.pad_token_id if self.pad_token_id is not None else 0
        if padding:
            masks = [[1] * len(r) + [0] * (width - len(r)) for r in rows]
            rows = [r + [pad] * (width - len(r)) for r in rows]
        else:
            masks = [[1] * len(r) for r in rows]
        enc = {"input_ids": rows, "token_type_ids": [[0] * len(r) for r in rows], "attention_mask": masks}
        if return_tensors is None:
            return {k: v[0] for k, v in enc.items()} if single else enc
        import numpy as np

        arrays = {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}
        if return_tensors == "pt":
            import torch

            return {k: torch.from_numpy(v) for k, v in arrays.items()}
        return arrays

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return " ".join(f"<{int(i)}>" for i in ids)
