"""``edgekit demo`` (the README's main job) end to end on the real packaged models: a short
optimize run on MiniLM and SmolLM2 generation. Its own file, so it runs beside the other e2e files."""

from __future__ import annotations

import json

import pytest

from ..conftest import run_cli

pytestmark = pytest.mark.e2e


def test_demo_runs_on_the_packaged_models(tmp_path):
    out = tmp_path / "demo"
    args = ("--max-steps", "10", "--held-docs", "50", "--repeat", "3", "--new-tokens", "8")
    result = run_cli("demo", "--out", str(out), *args, timeout=1500)
    assert result.returncode == 0, result.stderr
    cells = json.loads((out / "optimize" / "results.json").read_text())["cells"]
    # the teacher in PyTorch, then (teacher, L3) x (ort, openvino) x (fp32, int8)
    assert len(cells) == 9 and all(c["state"] == "ok" for c in cells), [c.get("error") for c in cells]
    assert {c["source"] for c in cells} == {"teacher", "L3"}
    assert all(c["accuracy"] > 0.5 and c["p50_ms"] > 0 for c in cells)
    assert (out / "optimize" / "report.html").is_file() and (out / "optimize" / "pareto.png").is_file()
    rows = json.loads((out / "generation" / "bench.json").read_text())["rows"]
    assert {r["backend"] for r in rows} == {"torch", "ort"} and len(rows) == 3  # torch once for one source
    assert all(r["tokens_per_s"] > 0 for r in rows)
    assert "teacher torch fp32" in result.stdout and "reports:" in result.stdout
    again = run_cli("demo", "--out", str(out), *args)
    assert again.returncode != 0 and "--overwrite" in again.stderr  # a finished demo is not silently redone
