from __future__ import annotations

import json

import pytest

from edgekit.artifacts import hash_folder, read_manifest, staged_output
from edgekit.errors import InputError


def test_staged_output_renames_into_place(tmp_path):
    with staged_output(tmp_path / "out", overwrite=False) as tmp:
        (tmp / "a.txt").write_text("1")
        assert not (tmp_path / "out").exists()
    assert (tmp_path / "out" / "a.txt").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_failure_leaves_nothing_and_keeps_the_old_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with staged_output(out, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("boom")
    assert [p.name for p in out.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_overwrite_replaces_after_success(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with staged_output(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in out.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_hash_folder_ignores_manifest_and_sees_content(tmp_path):
    (tmp_path / "w.bin").write_bytes(b"abc")
    first = hash_folder(tmp_path)
    (tmp_path / "manifest.json").write_text("{}")
    assert hash_folder(tmp_path) == first
    (tmp_path / "w.bin").write_bytes(b"abd")
    assert hash_folder(tmp_path) != first


def test_read_manifest_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_manifest(tmp_path / "missing")
    with pytest.raises(InputError, match="no manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"stage": "export"}))
    assert read_manifest(tmp_path)["stage"] == "export"
