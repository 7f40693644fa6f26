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


def _edgekit_folder(out):
    out.mkdir()
    (out / "manifest.json").write_text("{}")
    (out / "old.txt").write_text("old")


def test_failure_leaves_nothing_and_keeps_the_old_folder(tmp_path):
    out = tmp_path / "out"
    _edgekit_folder(out)
    with pytest.raises(RuntimeError):
        with staged_output(out, overwrite=True) as tmp:
            (tmp / "new.txt").write_text("new")
            raise RuntimeError("boom")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_overwrite_replaces_after_success(tmp_path):
    out = tmp_path / "out"
    _edgekit_folder(out)
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
    for bad, needle in (
        ("[1, 2]", "not an edgekit manifest"),
        ('{"stage": "export"}', "has no 'export' section"),
    ):
        (tmp_path / "manifest.json").write_text(bad)
        with pytest.raises(InputError, match=needle):
            read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"stage": "export", "export": {}}))
    assert read_manifest(tmp_path)["stage"] == "export"


def test_stale_staging_folders_of_dead_runs_are_removed(tmp_path):
    """A run killed with SIGKILL leaves .<out>.tmp-<pid>-*; the next run for that --out removes it
    when no live process owns it, and leaves a live run's and other outputs' folders alone."""
    import os
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".out.tmp-{dead.pid}-abc"
    live = tmp_path / f".out.tmp-{os.getpid()}-xyz"
    other = tmp_path / f".other.tmp-{dead.pid}-abc"
    for folder in (stale, live, other):
        folder.mkdir()
        (folder / "part.bin").write_bytes(b"x" * 10)
    with staged_output(tmp_path / "out", overwrite=False) as tmp:
        (tmp / "a.txt").write_text("1")
    assert not stale.exists() and live.exists() and other.exists()


def test_overwrite_refuses_a_folder_edgekit_did_not_write(tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "cat.jpg").write_bytes(b"mine")
    with pytest.raises(InputError, match="replaces only folders edgekit wrote.*holds cat.jpg"):
        with staged_output(out, overwrite=True):
            pass
    assert [p.name for p in out.iterdir()] == ["cat.jpg"] and sorted(p.name for p in tmp_path.iterdir()) == [
        "photos"
    ]
    (tmp_path / "empty").mkdir()  # an empty folder holds nothing to lose
    with staged_output(tmp_path / "empty", overwrite=True) as tmp:
        (tmp / "a.txt").write_text("1")
    assert (tmp_path / "empty" / "a.txt").is_file()


@pytest.mark.parametrize(("out", "relation"), [("model", "is"), (".", "holds"), ("model/sub", "lies inside")])
def test_out_that_is_holds_or_lies_inside_an_input_is_refused(tmp_path, out, relation):
    from edgekit.artifacts import check_out_dir

    model = tmp_path / "model"
    model.mkdir()
    (model / "manifest.json").write_text("{}")  # even an edgekit folder: it is an input
    with pytest.raises(InputError, match=f"--out '.*' {relation} the input '{model}'"):
        check_out_dir(tmp_path / out, True, inputs=(None, model))
    assert sorted(p.name for p in model.iterdir()) == ["manifest.json"]


def test_out_written_meanwhile_by_another_run_is_kept(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match="written by another run"):
        with staged_output(out, overwrite=False) as tmp:
            (tmp / "mine.txt").write_text("late")
            out.mkdir()  # the other run renamed its folder into place first
            (out / "theirs.txt").write_text("first")
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_artifacts_get_the_users_umask_not_0700(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        with staged_output(tmp_path / "out", overwrite=False) as tmp:
            (tmp / "sub").mkdir()
            (tmp / "sub" / "f.txt").write_text("1")
    finally:
        os.umask(old)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "out" / "sub").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "out" / "sub" / "f.txt").stat().st_mode & 0o777 == 0o644
