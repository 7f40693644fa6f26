"""What every command shares: the --verbose and --overwrite options, comma lists, and the
one-line error contract (``handled``)."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Annotated, Callable

import typer

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug logs.")]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite", help="Replace --out if it exists (the old folder is removed only after success)."
    ),
]


def _setup_logging(verbose: bool) -> None:
    import os

    from rich.logging import RichHandler

    if not verbose:  # transformers' weight-loading bars would break the one-line error contract
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(show_path=False, console=stderr())],
        force=True,
    )
    if not verbose:
        for noisy in ("torch", "transformers", "onnxscript", "httpx"):
            logging.getLogger(noisy).setLevel(logging.ERROR)


def stderr():
    from rich.console import Console

    return Console(stderr=True)


def split_list(value: str, cast: Callable, option: str) -> tuple:
    from edgekit.errors import InputError

    try:
        items = tuple(cast(v.strip()) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise InputError(
            f"{option} '{value}' is not a comma-separated list of {cast.__name__}", f"pass e.g. {option} 1,8"
        ) from exc
    if not items:
        raise InputError(f"{option} is empty", f"pass e.g. {option} 1,8")
    return items


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so staging folders are removed as for Ctrl-C."""


def _terminate_like_interrupt() -> None:
    import signal

    def on_sigterm(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)


def handled(fn):
    """Turn errors into one line on stderr and an exit code; keep the traceback for --verbose."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        verbose = bool(kwargs.get("verbose"))
        _setup_logging(verbose)
        _terminate_like_interrupt()
        from edgekit.errors import EdgekitError

        try:
            return fn(*args, **kwargs)
        except EdgekitError as exc:
            if verbose:
                stderr().print_exception()
            print(f"error: {exc}", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            print("interrupted; nothing was written", file=sys.stderr)
            raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None
        except Exception as exc:  # noqa: BLE001 - an unexpected failure: one line unless --verbose
            if verbose:
                stderr().print_exception()
            first = (str(exc).splitlines() or [""])[0][:300]
            print(
                f"error: unexpected {type(exc).__name__}: {first} (rerun with --verbose for the traceback)",
                file=sys.stderr,
            )
            raise typer.Exit(1) from None

    return wrapper
