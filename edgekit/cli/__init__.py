"""The ``edgekit`` command line. Thin: it parses options into a config and calls the library.

Errors a user can cause print one line and exit non-zero; ``--verbose`` adds the traceback
and debug logs. Each command lives in a module of this package and is registered here, in one table.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from edgekit.cli import distill_cmd, export_cmd, run_cmd

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
    ("build", export_cmd.build_cmd),
    ("bench", run_cmd.bench_cmd),
    ("demo", run_cmd.demo),
    ("generate", run_cmd.generate),
    ("backends", run_cmd.backends),
)
for _name, _command in COMMANDS:
    app.command(_name)(_command)


def main() -> None:
    app()
