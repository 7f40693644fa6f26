"""Artifact folders: written to a temporary folder and renamed into place, with a manifest.

Every stage reads a folder and writes a new one; it never edits its input. ``manifest.json``
says what the folder holds, what it came from (hashes), which edgekit version and config made
it, and what was validated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import errno
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from edgekit.errors import InputError

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = 1


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def hash_folder(folder: Path) -> str:
    """One sha256 over every file's relative path and content (sorted, so stable)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel == MANIFEST or rel.startswith("."):
            continue
        digest.update(rel.encode())
        digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def file_table(folder: Path) -> dict[str, dict[str, Any]]:
    """``{relative path: {bytes, sha256}}`` for every file in ``folder`` but the manifest."""
    table = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel != MANIFEST:
            table[rel] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
    return table


def environment() -> dict[str, Any]:
    """Versions of Python, the OS and the packages that matter, for the manifest."""
    from importlib import metadata

    packages = {}
    for name in (
        "edgekit",
        "torch",
        "transformers",
        "onnx",
        "onnxscript",
        "onnxruntime",
        "openvino",
        "numpy",
    ):
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": packages,
    }


# CPU features that decide which kernels the runtimes pick (fp32 FMA width, int8 dot products, bf16)
CPU_FEATURES = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_bf16",
    "amx_int8",
    "asimd",
    "asimddp",
    "i8mm",
    "bf16",
    "sve",
)


def cpu_info() -> dict[str, Any]:
    """The CPU a benchmark ran on: model, the cores this process may use, and the kernel-relevant
    instruction sets. Figures from different machines are only comparable with this beside them."""
    model, flags = None, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (part.strip() for part in line.partition(":"))
            if key in ("model name", "Model") and model is None:
                model = value
            elif key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:  # not Linux: the model name is what platform knows
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "model": model or platform.processor() or platform.machine(),
        "usable_cores": usable,
        "logical_cores": os.cpu_count(),
        "features": [f for f in CPU_FEATURES if f in flags],
    }


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(to_jsonable(data), indent=2, sort_keys=False) + "\n")


def read_manifest(folder: Path) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / MANIFEST
    if not folder.is_dir():
        what = "is a file, not an artifact folder" if folder.exists() else "does not exist"
        raise InputError(f"artifact folder '{folder}' {what}", "pass a folder written by 'edgekit export'")
    if not path.is_file():
        raise InputError(
            f"'{folder}' has no {MANIFEST}, so it is not an edgekit artifact",
            "pass a folder written by 'edgekit export'",
        )
    manifest = read_json(path, "re-create the artifact")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("stage"), str):
        raise InputError(
            f"'{path}' is not an edgekit manifest (no 'stage' in a JSON object)", "re-create the artifact"
        )
    if manifest["stage"] == "export" and not isinstance(manifest.get("export"), dict):
        raise InputError(f"'{path}' has no 'export' section", "re-create the artifact with 'edgekit export'")
    verify_files(folder, manifest)
    return manifest


def verify_files(folder: Path, manifest: dict, full: bool | None = None) -> None:
    """Each file the manifest lists is there with its size (always: cheap) and its sha256 (with
    ``full``; by default when the environment variable EDGEKIT_VERIFY is 1), so a damaged artifact
    is named before anything loads it."""
    full = os.environ.get("EDGEKIT_VERIFY") == "1" if full is None else full
    files = manifest.get("files")
    if not isinstance(files, dict):
        return
    hint = "copy the artifact again, or re-create it"
    for name, entry in files.items():
        file = folder / name
        if not isinstance(entry, dict):
            continue
        if not file.is_file():
            raise InputError(f"the artifact '{folder}' is damaged: {name} is missing", hint)
        size = file.stat().st_size
        if entry.get("bytes") is not None and size != entry["bytes"]:
            raise InputError(
                f"the artifact '{folder}' is damaged: {name} has {size} bytes, its manifest records {entry['bytes']}",
                hint,
            )
        if full and entry.get("sha256") and sha256_file(file) != entry["sha256"]:
            raise InputError(
                f"the artifact '{folder}' is damaged: the sha256 of {name} differs from its manifest", hint
            )


def read_json(path: Path, hint: str) -> Any:
    """Parse a JSON file; a syntax error is the user's to fix, reported in one line with ``hint``."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"'{path}' is not valid JSON ({exc.msg} at line {exc.lineno})", hint) from exc
    except UnicodeDecodeError as exc:
        raise InputError(
            f"'{path}' is not valid JSON (byte 0x{exc.object[exc.start]:02x} at offset {exc.start} is not UTF-8)",
            hint,
        ) from exc


def check_out_dir(out: Path, overwrite: bool, inputs: Iterable[Path | None] = ()) -> Path:
    """Fail before any work if ``out`` cannot be written, is, holds or lies inside one of the
    ``inputs``, or exists without ``overwrite``; ``overwrite`` replaces only a folder edgekit wrote
    (it has a manifest) or an empty one. Returns the resolved path."""
    out = Path(out).expanduser().resolve()
    for given in inputs:
        if given is None:
            continue
        src = Path(given).expanduser().resolve()
        relation = (
            "is"
            if out == src
            else "holds"
            if src.is_relative_to(out)
            else "lies inside"
            if out.is_relative_to(src)
            else None
        )
        if relation:
            raise InputError(
                f"--out '{out}' {relation} the input '{src}'",
                "choose an --out outside every input; nothing was written",
            )
    if out.exists() and not overwrite:
        raise InputError(
            f"output folder '{out}' already exists", "pass --overwrite to replace it, or choose another --out"
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"output path '{out}' exists and is not a folder", "choose another --out")
    if out.exists() and not (out / MANIFEST).is_file():
        held = sorted(p.name for p in out.iterdir())
        if held:
            shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
            raise InputError(
                f"--overwrite replaces only folders edgekit wrote, and '{out}' has no {MANIFEST} (it holds {shown})",
                "choose another --out, or move that folder away yourself",
            )
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(
            f"cannot write to '{out}': '{parent}' is not writable",
            "choose an --out in a folder you can write to",
        )
    return out


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove the staging folders of ``out`` (``.<name>.tmp-<pid>-*``) whose process is gone: a run
    killed with SIGKILL, or a machine that went down, cannot clean up after itself."""
    removed = []
    for stale in out.parent.glob(f".{out.name}.tmp-*-*"):
        pid = stale.name[len(f".{out.name}.tmp-") :].split("-", 1)[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        shutil.rmtree(stale, ignore_errors=True)
        removed.append(stale)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _umask_modes(folder: Path) -> None:
    """Give the staged folder and what is in it the modes of any file the user creates (``mkdtemp``
    makes the folder 0700): directories 0777, files 0666, less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def disk_full(out: Path, tmp: Path) -> InputError:
    """The disk filled while ``tmp`` was being written for ``out``: what it held, what is free."""
    written = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file()) if tmp.is_dir() else 0
    free = shutil.disk_usage(out.parent).free
    return InputError(
        f"the disk holding '{out.parent}' is full: this run needs more than the {written / 1e6:.1f} MB it had written when it failed ({free / 1e6:.1f} MB free there)",
        "free space there, or choose an --out on another disk; nothing was kept",
    )


@contextlib.contextmanager
def staged_output(out: Path, overwrite: bool, inputs: Iterable[Path | None] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside ``out``; on success rename it to ``out``.

    On any error the temporary folder is removed and ``out`` is left as it was. When ``out``
    appeared meanwhile (another run wrote it) and ``overwrite`` is off, this run fails and keeps
    the other's folder.
    """
    out = check_out_dir(out, overwrite, inputs)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(out)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-{os.getpid()}-", dir=out.parent))
    except OSError as exc:
        raise InputError(
            f"cannot create '{out}': {exc.strerror or exc}", "choose an --out in a folder you can write to"
        ) from exc
    try:
        try:
            yield tmp
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise disk_full(out, tmp) from exc
            raise
        _umask_modes(tmp)
        raced = InputError(
            f"'{out}' was written by another run while this one was working",
            "nothing of this run was kept; choose another --out, or pass --overwrite",
        )
        if out.exists() and not overwrite:
            raise raced
        if out.exists():
            backup = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, backup)
            os.replace(tmp, out)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            try:
                os.rename(tmp, out)  # fails if another run put a non-empty folder there meanwhile
            except OSError:
                if out.exists():
                    raise raced from None
                raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def build_manifest(
    *, stage: str, config: Any, source: dict[str, Any], folder: Path, started: str, **sections: Any
) -> dict[str, Any]:
    from edgekit import __version__

    manifest = {
        "schema": MANIFEST_SCHEMA,
        "stage": stage,
        "edgekit_version": __version__,
        "created_at": started,
        "finished_at": now_iso(),
        "config": to_jsonable(config),
        "source": source,
        **sections,
        "files": file_table(folder),
        "environment": environment(),
    }
    return manifest


@contextlib.contextmanager
def cache_lock(out: Path) -> Iterator[None]:
    """One writer at a time for the cache entry ``out``, across processes (parallel test workers,
    two commands at once): a caller re-checks the entry after taking the lock, so the second one
    uses what the first wrote instead of writing it again."""
    import fcntl

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.parent / f".{out.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def cache_dir() -> Path:
    """``$EDGEKIT_CACHE``, else ``$XDG_CACHE_HOME/edgekit``, else ``~/.cache/edgekit``."""
    if os.environ.get("EDGEKIT_CACHE"):
        return Path(os.environ["EDGEKIT_CACHE"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "edgekit"
