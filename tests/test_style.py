"""The shape of the house, checked from the code: ruff (lint and format, configured in
pyproject.toml), no function over 80 lines, no module over 500, no import circle between edgekit
modules, and runtimes/ importing nothing from export/ (DESIGN.md, "The house")."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES, MAX_MODULE_LINES = 80, 500


def _ruff() -> list[str]:
    exe = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if exe is None:
        pytest.fail("ruff is not installed: it comes with the dev extra (pip install -e '.[dev]')")
    return [exe]


def test_ruff_lint_passes():
    done = subprocess.run([*_ruff(), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_ruff_format_is_applied():
    done = subprocess.run(
        [*_ruff(), "format", "--check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 0, "run 'ruff format .':\n" + done.stdout + done.stderr


def _modules() -> dict[str, Path]:
    """edgekit module name -> file, mapped with pyproject.toml's package-dir."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    found: dict[str, Path] = {}
    for package, folder in config["tool"]["setuptools"]["package-dir"].items():
        for path in (REPO / folder).rglob("*.py"):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            name = ".".join((package, *(parts[:-1] if parts[-1] == "__init__" else parts)))
            found.setdefault(name, path)
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The edgekit modules ``name`` imports anywhere in the file (lazy imports in functions too)."""

    def known(dotted: str) -> str | None:
        while dotted and dotted not in modules:
            dotted = dotted.rpartition(".")[0]
        return dotted or None

    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(filter(None, (known(alias.name) for alias in node.names)))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                hit = known(f"{node.module}.{alias.name}") or known(node.module)
                if hit:
                    out.add(hit)
    out.discard(name)
    return out


def test_functions_and_modules_are_short():
    long_functions, long_modules = [], []
    for name, path in _modules().items():
        text = path.read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(f"{path.relative_to(REPO)} ({len(text.splitlines())} lines)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long_functions.append(
                        f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({lines} lines)"
                    )
    assert not long_functions and not long_modules, long_functions + long_modules


def test_no_import_circles_and_runtimes_never_import_export():
    modules = _modules()
    edges = {name: _imports(name, path, modules) for name, path in modules.items()}
    upward = sorted(
        f"{a} -> {b}"
        for a, targets in edges.items()
        if a.startswith("edgekit.runtimes")
        for b in targets
        if b.startswith("edgekit.export")
    )
    assert not upward, upward

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt == goal:
                    return True
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return False

    circles = sorted(
        f"{a} <-> {b}" for a, targets in edges.items() for b in targets if a < b and reaches(b, a)
    )
    assert not circles, circles
