"""Progress display for long steps (rich), on stderr so stdout stays clean for results."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Callable, Iterator

log = logging.getLogger("edgekit")

STOP = threading.Event()
"""Set by the SIGTERM handler: every step boundary raises ``Terminated`` once it is set, so a
signal that arrived inside library code that swallows exceptions still stops the run."""


def check_stop() -> None:
    if STOP.is_set():
        from edgekit.errors import Terminated

        raise Terminated()


class Steps:
    """A spinner line per step with its elapsed time; quiet=True logs at debug level only."""

    def __init__(self, title: str, quiet: bool = False):
        self.title = title
        self.quiet = quiet
        self._progress = None
        self.timings: dict[str, float] = {}

    def __enter__(self) -> "Steps":
        if not self.quiet:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    @contextlib.contextmanager
    def step(self, description: str, total: int | None = None) -> Iterator[Callable[[], None]]:
        """A step; with ``total``, the line counts items and the step yields ``advance()``, called once per item."""
        check_stop()
        progress = self._progress
        label = f"{self.title}: {description}"
        task = progress.add_task(label, total=total or 1) if progress else None
        start = time.perf_counter()
        log.debug("%s: %s ...", self.title, description)

        def advance() -> None:
            if progress is not None and task is not None and total:
                progress.advance(task)

        try:
            yield advance
            check_stop()
        finally:
            self.timings[description] = round(time.perf_counter() - start, 3)
            if progress is not None and task is not None:
                progress.update(task, completed=total or 1)


@contextlib.contextmanager
def training_progress(
    total: int, start: int, terms: list[str], quiet: bool = False, report: Callable | None = None
):
    """A bar over training steps showing each loss term and steps/s; yields ``update(step, losses)``.
    Quiet: no bar, and ``report(step, total, losses)`` (when given) is called instead."""
    if quiet:
        yield (lambda step, losses: report(step, total, losses)) if report else (lambda step, losses: None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [
        TextColumn("distill"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[losses]}"),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("distill", total=total, completed=start, losses="", rate="")
        began, first = time.perf_counter(), start

        def update(step: int, losses: dict[str, float]) -> None:
            shown = " ".join(f"{k} {losses[k]:.4f}" for k in [*terms, "total"] if k in losses)
            rate = (step - first) / max(time.perf_counter() - began, 1e-9)
            progress.update(task, completed=step, losses=shown, rate=f"{rate:.2f} steps/s")

        yield update
