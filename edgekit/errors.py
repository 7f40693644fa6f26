"""One root error type. Every error a user can cause says what was wrong and what to do."""

from __future__ import annotations


class EdgekitError(Exception):
    """Root of every error edgekit raises on purpose.

    ``str(err)`` is one line: what was wrong, then what to do (the hint).
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so staging folders are removed as for Ctrl-C."""


class InputError(EdgekitError):
    """A path, option or value given by the user is wrong."""


class MissingExtraError(EdgekitError):
    """An optional dependency (a pip extra) needed for this step is not installed."""

    def __init__(self, what: str, module: str, extra: str):
        super().__init__(
            f"{what} needs the Python package '{module}', which is not installed",
            f"install it with: pip install 'edgekit[{extra}]'",
        )
        self.module = module
        self.extra = extra


class UnsupportedModelError(EdgekitError):
    """The model's architecture or task has no export spec."""


class ValidationError(EdgekitError):
    """An exported model does not match the PyTorch reference within tolerance."""

    exit_code = 3


def did_you_mean(name: str, choices) -> str:
    """A hint listing the choices, with the closest match first when there is one."""
    import difflib

    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1)
    listed = ", ".join(choices)
    if close:
        return f"did you mean '{close[0]}'? (available: {listed})"
    return f"available: {listed}"


def require(module: str, what: str, extra: str):
    """Import ``module`` or raise :class:`MissingExtraError` naming the pip extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # only a missing top-level package is the user's to fix
        if exc.name and exc.name.split(".")[0] == module.split(".")[0]:
            raise MissingExtraError(what, module.split(".")[0], extra) from exc
        raise
