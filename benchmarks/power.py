"""Power and temperature during timed runs on an NVIDIA Jetson, from ``tegrastats``.

bench starts ``tegrastats --interval 100`` when it is on PATH, stamps each line as it arrives,
and each row gets the average board power over its worker's timed blocks, results per joule and
the hottest sensor seen. A line looks like (Orin Nano; Xavier and Nano name their rails differently)::

    RAM 2448/7764MB (lfb 2x4MB) SWAP 0/3882MB CPU [12%@1510,...] GR3D_FREQ 0% cpu@47.25C gpu@45.9C
    tj@47.25C VDD_IN 4152mW/4152mW VDD_CPU_GPU_CV 520mW/520mW VDD_SOC 1195mW/1195mW

Board power is the input rail where the board has one (``VDD_IN``, ``POM_5V_IN``), else the sum of
every rail (AGX Orin, Xavier). Rails read ``NAME now/average`` in mW, with or without the unit.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field

RAIL = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*) (\d+)(?:mW)?/(\d+)(?:mW)?(?=\s|$)")
TEMP = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*)@(-?\d+(?:\.\d+)?)C\b")
INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
NOT_RAILS = ("RAM", "SWAP", "IRAM", "EMC_FREQ", "GR3D_FREQ")


@dataclass
class Sample:
    watts: float | None
    rails_mw: dict[str, int] = field(default_factory=dict)
    temps_c: dict[str, float] = field(default_factory=dict)


def parse_line(line: str) -> Sample:
    """The board power (W), each rail's present draw (mW) and each temperature (C) of one line."""
    rails = {name: int(now) for name, now, _ in RAIL.findall(line) if name.upper() not in NOT_RAILS}
    temps = {name: float(value) for name, value in TEMP.findall(line)}
    temps = {k: v for k, v in temps.items() if v > -200}  # an absent sensor reads -256C
    source = next((r for r in INPUT_RAILS if r in rails), None)
    milliwatts = rails[source] if source else (sum(rails.values()) if rails else None)
    return Sample(None if milliwatts is None else milliwatts / 1000, rails, temps)


class PowerMonitor:
    """``with PowerMonitor() as power``: samples stamped with ``time.perf_counter()`` as they arrive;
    ``summary(intervals)`` averages those that fall inside the given (start, end) intervals."""

    def __init__(self, command: tuple[str, ...] = ("tegrastats", "--interval", "100")):
        self.command = command
        self.samples: list[tuple[float, Sample]] = []
        self._proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("tegrastats") is not None

    def __enter__(self) -> "PowerMonitor":
        self._proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            sample = parse_line(line)
            if sample.watts is not None or sample.temps_c:
                self.samples.append((time.perf_counter(), sample))

    def __exit__(self, *exc) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def summary(self, intervals: list[tuple[float, float]]) -> dict[str, float] | None:
        """Average watts and the hottest reading over the samples inside ``intervals``; None if none fell there."""
        inside = [s for t, s in self.samples if any(a <= t <= b for a, b in intervals)]
        watts = [s.watts for s in inside if s.watts is not None]
        if not watts:
            return None
        temps = [v for s in inside for v in s.temps_c.values()]
        return {
            "avg_watts": sum(watts) / len(watts),
            "power_samples": len(watts),
            **({"max_temp_c": max(temps)} if temps else {}),
        }


TIMED = ("time", "generate", "recompute")
"""Worker commands whose replies are timed runs: their (start, end) are what power is averaged over."""


def add_power(rows: list[dict], intervals: dict[tuple[str, str], list], monitor: PowerMonitor | None) -> None:
    """Each row's average watts over its worker's timed blocks and its results per joule
    (items/s or tokens/s divided by watts); rows stay as they are without a monitor."""
    if monitor is None:
        return
    for row in rows:
        power = monitor.summary(intervals.get((row["artifact"], row["backend"]), []))
        if power is None:
            continue
        row.update(power)
        rate = row.get("tokens_per_s") or row.get("throughput_per_s")
        if rate and power["avg_watts"] > 0:
            row["per_joule"] = rate / power["avg_watts"]
