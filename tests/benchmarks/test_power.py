"""Jetson power from tegrastats: the line parser on each board family's format, and bench reading
a tegrastats log while it times (no Jetson here: a ``tegrastats`` on PATH replays a log in the
Orin Nano line format, tests/benchmarks/data/tegrastats_orin_nano.log, at the tool's own pace)."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from edgekit.benchmarks.power import PowerMonitor, parse_line

LOG = Path(__file__).parent / "data" / "tegrastats_orin_nano.log"


@pytest.mark.parametrize(
    "line,watts,temps",
    [
        (  # Orin Nano / NX: one input rail
            "RAM 2448/7620MB (lfb 2x4MB) SWAP 0/3810MB CPU [12%@1510,off] EMC_FREQ 0% GR3D_FREQ 0% "
            "cpu@47.25C gpu@45.9C tj@47.25C VDD_IN 4152mW/4152mW VDD_CPU_GPU_CV 520mW/520mW VDD_SOC 1195mW/1195mW",
            4.152,
            {"cpu": 47.25, "gpu": 45.9, "tj": 47.25},
        ),
        (  # AGX Orin: no input rail, the rails are summed
            "RAM 4722/30536MB (lfb 6101x4MB) CPU [1%@729,0%@729] GR3D_FREQ 0% CPU@48.5C GPU@46.9C "
            "VDD_GPU_SOC 2399mW/2399mW VDD_CPU_CV 799mW/799mW VIN_SYS_5V0 3604mW/3604mW VDDQ_VDD2_1V8AO 302mW/302mW",
            (2399 + 799 + 3604 + 302) / 1000,
            {"CPU": 48.5, "GPU": 46.9},
        ),
        (  # Xavier: rails without units, an absent sensor at -256C
            "RAM 1810/15692MB (lfb 3152x4MB) CPU [2%@1190] EMC_FREQ 0% GR3D_FREQ 0% AUX@36C CPU@37.5C "
            "thermal@36.9C Tboard@35C AO@37C GPU@36.5C PMIC@100C Tdiode@-256C GPU 0/0 CPU 155/155 SOC 1242/1242 "
            "CV 0/0 VDDRQ 310/310 SYS5V 1818/1818",
            (155 + 1242 + 310 + 1818) / 1000,
            {
                "AUX": 36.0,
                "CPU": 37.5,
                "thermal": 36.9,
                "Tboard": 35.0,
                "AO": 37.0,
                "GPU": 36.5,
                "PMIC": 100.0,
            },
        ),
        (  # Nano: the 5 V input rail
            "RAM 1559/3956MB (lfb 3x4MB) IRAM 0/252kB(lfb 252kB) CPU [4%@102] EMC_FREQ 0%@204 GR3D_FREQ 0%@76 "
            "APE 25 PLL@24C CPU@26.5C PMIC@100C GPU@25C AO@33C thermal@25.75C POM_5V_IN 1106/1106 "
            "POM_5V_GPU 0/0 POM_5V_CPU 164/164",
            1.106,
            {"PLL": 24.0, "CPU": 26.5, "PMIC": 100.0, "GPU": 25.0, "AO": 33.0, "thermal": 25.75},
        ),
        ("RAM 1559/3956MB SWAP 0/1978MB", None, {}),
    ],
)
def test_each_board_family_line_gives_board_watts_and_temperatures(line, watts, temps):
    sample = parse_line(line)
    assert sample.watts == pytest.approx(watts) if watts is not None else sample.watts is None
    assert sample.temps_c == temps
    assert "RAM" not in sample.rails_mw and "SWAP" not in sample.rails_mw and "IRAM" not in sample.rails_mw


def test_the_recorded_log_parses_line_by_line():
    samples = [parse_line(line) for line in LOG.read_text().splitlines()]
    assert len(samples) == 40 and all(s.watts is not None for s in samples)
    assert min(s.watts for s in samples) == pytest.approx(4.1) and max(
        s.watts for s in samples
    ) == pytest.approx(4.64)
    assert all(s.rails_mw["VDD_SOC"] >= 1190 for s in samples)


@pytest.fixture
def replayed_tegrastats(tmp_path, monkeypatch):
    """A ``tegrastats`` first on PATH that prints the recorded log, a line per 20 ms, over and over."""
    tool = tmp_path / "bin" / "tegrastats"
    tool.parent.mkdir()
    tool.write_text(
        f"#!{sys.executable}\nimport sys, time\nlines = open({str(LOG)!r}).read().splitlines()\n"
        "while True:\n    for line in lines:\n        print(line, flush=True)\n        time.sleep(0.02)\n"
    )
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")
    return tool


def test_bench_reports_watts_and_results_per_joule_while_tegrastats_runs(
    replayed_tegrastats, tiny_models, tmp_path
):
    from edgekit.benchmarks.harness import BenchConfig, bench
    from edgekit.export import ExportConfig, export_model

    assert PowerMonitor.available()
    art = export_model(ExportConfig(model=tiny_models("bert"), out=tmp_path / "art"), quiet=True)
    cfg = BenchConfig(
        artifacts=(art,),
        backends=("ort",),
        seq_lens=(16,),
        warmup=1,
        repeat=600,
        rounds=3,
        out=tmp_path / "b",
    )
    result = bench(cfg, quiet=True)
    (row,) = result["rows"]
    assert 4.1 <= row["avg_watts"] <= 4.64 and row["power_samples"] >= 1
    assert row["per_joule"] == pytest.approx(row["throughput_per_s"] / row["avg_watts"])
    assert 47.0 <= row["max_temp_c"] <= 49.5
    assert "| W | per J | max C |" in (tmp_path / "b" / "bench.md").read_text()


def test_no_tegrastats_no_power_columns(tiny_models, tmp_path, monkeypatch):
    from edgekit.benchmarks.harness import BenchConfig, bench
    from edgekit.export import ExportConfig, export_model

    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    assert not PowerMonitor.available()
    art = export_model(ExportConfig(model=tiny_models("bert"), out=tmp_path / "art"), quiet=True)
    result = bench(
        BenchConfig(artifacts=(art,), backends=("ort",), seq_lens=(16,), warmup=1, repeat=3), quiet=True
    )
    assert "avg_watts" not in result["rows"][0]
