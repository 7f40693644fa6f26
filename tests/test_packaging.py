"""The wheel holds every module under the edgekit namespace, and importing edgekit stays light."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from .conftest import REPO, run_cli


def test_wheel_contains_and_imports_every_module(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("edgekit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    modules = sorted(n[:-3].replace("/", ".").removesuffix(".__init__") for n in names if n.endswith(".py"))
    assert all(m.split(".")[0] == "edgekit" for m in modules), modules
    # Every source file in the mapped folders is in the wheel (the package-dir trap).
    expected = []
    for folder, package in [
        ("edgekit", "edgekit"),
        ("distill", "edgekit.compress.distill"),
        ("export", "edgekit.export"),
        ("runtimes", "edgekit.runtimes"),
        ("calibration", "edgekit.calibration"),
        ("compress", "edgekit.compress"),
        ("benchmarks", "edgekit.benchmarks"),
    ]:
        for path in (REPO / folder).rglob("*.py"):
            rel = path.relative_to(REPO / folder).with_suffix("").as_posix().replace("/", ".")
            expected.append(f"{package}.{rel}".removesuffix(".__init__"))
    assert sorted(expected) == modules
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )
    code = (
        "import importlib, sys, edgekit\n"
        f"assert edgekit.__file__.startswith({str(site)!r}), edgekit.__file__\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print('ok', len(sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")


def test_import_and_help_do_not_load_heavy_backends():
    code = (
        "import sys, edgekit, edgekit.cli, edgekit.runtimes, edgekit.export, edgekit.benchmarks.harness\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner().invoke(edgekit.cli.app, ['--help'])\n"
        "assert r.exit_code == 0 and 'export' in r.output and 'bench' in r.output, r.output\n"
        "heavy = [m for m in ('torch', 'onnxruntime', 'openvino', 'tensorrt', 'onnx') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_version_and_help_list_only_working_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("export", "bench", "demo", "backends"):
        assert command in result.stdout
    assert run_cli("--version").stdout.startswith("edgekit ")
