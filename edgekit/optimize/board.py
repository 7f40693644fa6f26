"""One live display over every stage of an optimize run (rich, on stderr): each stage's state,
its time, and what the running one is doing (distillation steps and losses)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger("edgekit.optimize")

STYLE = {
    "waiting": "dim",
    "running": "yellow",
    "done": "green",
    "reused": "cyan",
    "failed": "red",
    "skipped": "dim",
}


@dataclass
class Line:
    name: str
    state: str = "waiting"
    seconds: float | None = None
    detail: str = ""
    started: float = field(default=0.0, repr=False)


class Board:
    """``with Board(names, quiet) as board``: ``start(name)``, ``detail(name, text)``, ``finish(name, state)``."""

    def __init__(self, names: list[str], quiet: bool = False):
        self.lines = {n: Line(n) for n in names}
        self.quiet = quiet
        self._live: Any = None
        self._plain: Any = None
        self.began = time.perf_counter()

    def __enter__(self) -> "Board":
        if not self.quiet:
            from rich.console import Console
            from rich.live import Live

            console = Console(stderr=True)
            if console.is_terminal:
                self._live = Live(self._render(), console=console, refresh_per_second=4)
                self._live.__enter__()
            else:  # a log file or a pipe: a line per stage started and finished
                self._plain = console
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.__exit__(*exc)
            self._live.console.line()

    def add(self, name: str) -> None:
        self.lines.setdefault(name, Line(name))
        self._refresh()

    def start(self, name: str, detail: str = "") -> None:
        line = self.lines[name]
        line.state, line.detail, line.started = "running", detail, time.perf_counter()
        log.info("optimize: %s ...", name)
        self._say(f"{name}: running {detail}")
        self._refresh()

    def detail(self, name: str, text: str) -> None:
        self.lines[name].detail = text
        self._refresh()

    def finish(self, name: str, state: str, detail: str = "") -> None:
        line = self.lines[name]
        line.state, line.detail = state, detail
        if line.started:
            line.seconds = time.perf_counter() - line.started
        log.info("optimize: %s %s %s", name, state, detail)
        seconds = f" in {line.seconds:.0f} s" if line.seconds is not None else ""
        self._say(f"{name}: {state}{seconds} {detail}")
        self._refresh()

    def _say(self, text: str) -> None:
        if self._plain is not None:
            self._plain.print(f"optimize: {text}".rstrip(), soft_wrap=True)

    def training(self, name: str) -> Callable[[int, int, dict], None]:
        """A distillation step reporter that shows the step count and the total loss on ``name``'s line."""

        def report(step: int, total: int, losses: dict) -> None:
            loss = losses.get("total")
            self.detail(name, f"step {step}/{total}" + (f", loss {loss:.4f}" if loss is not None else ""))

        return report

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    def _render(self):
        from rich.table import Table

        done = sum(line.state in ("done", "reused") for line in self.lines.values())
        elapsed = time.perf_counter() - self.began
        table = Table(
            title=f"optimize: {done}/{len(self.lines)} stages, {elapsed / 60:.1f} min", title_justify="left"
        )
        for column in ("stage", "state", "time", ""):
            table.add_column(column)
        now = time.perf_counter()
        for line in self.lines.values():
            seconds = (
                line.seconds if line.seconds is not None else (now - line.started if line.started else None)
            )
            shown = (
                "" if seconds is None else f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
            )
            table.add_row(line.name, f"[{STYLE[line.state]}]{line.state}[/]", shown, line.detail[:90])
        return table
