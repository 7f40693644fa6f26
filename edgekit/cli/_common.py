"""What every command shares: the --verbose and --overwrite options, comma lists, and the
one-line error contract (``handled``)."""

from __future__ import annotations

import functools
import logging
import sys
from typing import Annotated, Callable, Optional

import typer

from edgekit.errors import Terminated
from edgekit.quiet import NOISY_LOGGERS, quiet_libraries  # noqa: F401 - NOISY_LOGGERS: read by the tests

Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug logs.")]
Overwrite = Annotated[
    bool,
    typer.Option(
        "--overwrite", help="Replace --out if it exists (the old folder is removed only after success)."
    ),
]

Encoding = Annotated[
    Optional[str],
    typer.Option(
        "--encoding",
        help="Encoding of the text data files (e.g. latin-1); default UTF-8, and bytes that do not decode are refused.",
    ),
]


def _setup_logging(verbose: bool) -> None:
    import os

    from rich.logging import RichHandler

    if not verbose:  # transformers' weight-loading bars would break the one-line error contract
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        if (
            "transformers" in sys.modules
        ):  # imported already (the Python API, a preloaded process): too late for the variable
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
    if sys.stderr.isatty():
        handler: logging.Handler = RichHandler(show_path=False, console=stderr())
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:  # a log file or a pipe: whole lines, not wrapped at 80 columns
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler], force=True)
    # The libraries' own warnings only with --verbose (set both ways: a process that ran quiet
    # before shows them again).
    quiet_libraries(verbose)


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


def _terminate_like_interrupt() -> None:
    import signal

    from edgekit._progress import STOP

    def on_sigterm(signum, frame):
        STOP.set()  # also seen at the next step, should library code swallow the exception below
        raise Terminated()

    signal.signal(signal.SIGTERM, on_sigterm)


def _os_error_line(exc: OSError) -> str:
    """An OSError no stage turned into its own line: the file, what the system said, what to do."""
    import errno

    where = f" '{exc.filename}'" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"no space left on the device writing{where}; free space there, or point EDGEKIT_CACHE / --out at another disk"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"not allowed to write or read{where} ({exc.strerror}); check its permissions"
    return f"cannot access{where}: {exc.strerror or exc} (rerun with --verbose for the traceback)"


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
        except OSError as exc:
            if verbose:
                stderr().print_exception()
            print(f"error: {_os_error_line(exc)}", file=sys.stderr)
            raise typer.Exit(1) from None
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
