"""The ``edgekit`` command line. Thin: it parses options into a config and calls the library.

Errors a user can cause print one line and exit non-zero; ``--verbose`` adds the traceback
and debug logs. Each command lives in a module of this package and is registered here, in one table.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from edgekit.cli import distill_cmd, export_cmd, optimize_cmd, run_cmd, zero_shot_cmd

app = typer.Typer(
    name="edgekit",
    help="Make trained transformers small and fast on edge devices: export, validate, run and benchmark.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from edgekit import __version__

        print(f"edgekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = None,
) -> None:
    """edgekit: distil, export, quantize, run and benchmark transformers for edge devices."""


COMMANDS = (
    ("export", export_cmd.export),
    ("distill", distill_cmd.distill),
    ("optimize", optimize_cmd.optimize),
    ("build", export_cmd.build_cmd),
    ("bench", run_cmd.bench_cmd),
    ("demo", run_cmd.demo),
    ("generate", run_cmd.generate),
    ("zero-shot", zero_shot_cmd.zero_shot),
    ("backends", run_cmd.backends),
)
for _name, _command in COMMANDS:
    app.command(_name)(_command)


def main() -> None:
    """Run the CLI; a usage error (unknown option, missing argument, a value of the wrong type)
    is one line like every other bad input, with the command's --help to read."""
    import sys

    try:  # typer >= 0.2x carries its own copy of click
        from typer._click import exceptions as click
    except ImportError:  # pragma: no cover - older typer on the real click
        import click.exceptions as click

    try:
        code = app(standalone_mode=False)
    except click.NoArgsIsHelpError as exc:  # the help is printed; no arguments is not an error
        if exc.format_message().strip():
            print(exc.format_message())
        sys.exit(0)
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "edgekit"
        message = " ".join(exc.format_message().split())
        print(f"error: {message}; see '{command} --help'", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("interrupted; nothing was written", file=sys.stderr)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
