from __future__ import annotations

import json

import numpy as np
import pytest

from edgekit.calibration.text import load_texts, sample_texts, tokenize_fixed
from edgekit.errors import InputError


def test_load_txt_jsonl_and_folder(tmp_path):
    (tmp_path / "a.txt").write_text("one\n\n two \nthree\n")
    assert load_texts(tmp_path / "a.txt") == ["one", "two", "three"]
    (tmp_path / "b.jsonl").write_text(
        json.dumps({"text": "x", "label": 1}) + "\n" + json.dumps({"text": "y"}) + "\n"
    )
    assert load_texts(tmp_path / "b.jsonl") == ["x", "y"]
    folder = tmp_path / "docs" / "sport"
    folder.mkdir(parents=True)
    (folder / "1.txt").write_text("a match\nreport")
    assert load_texts(tmp_path / "docs") == ["a match\nreport"]


def test_bad_text_inputs(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_texts(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(InputError, match="holds no text"):
        load_texts(tmp_path / "empty.txt")
    (tmp_path / "bad.jsonl").write_text('{"txt": 1}\n')
    with pytest.raises(InputError, match="bad.jsonl:1 has no field 'text'"):
        load_texts(tmp_path / "bad.jsonl")


def test_sample_texts_are_long_enough():
    texts = sample_texts(min_words=300)
    assert len(texts) >= 30 and all(len(t.split()) >= 300 for t in texts)


def test_tokenize_fixed_pads_and_truncates(minilm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(minilm_dir))
    names = ["input_ids", "token_type_ids", "attention_mask"]
    long = tokenize_fixed(tok, sample_texts(min_words=200), 3, 64, names)
    assert all(v.shape == (3, 64) and v.dtype == np.int64 for v in long.values())
    assert long["attention_mask"].all()
    short = tokenize_fixed(tok, ["hi"], 2, 16, names)
    assert short["attention_mask"][0].sum() == 3  # [CLS] hi [SEP], then padding
