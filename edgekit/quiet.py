"""Library log lines that reach the terminal only with --verbose, in every edgekit process (the
CLI and the bench workers it spawns, which start with logging unconfigured)."""

from __future__ import annotations

import logging

NOISY_LOGGERS = ("torch", "torch.utils._pytree", "torchao", "transformers", "onnxscript", "httpx")
"""torch.utils._pytree is named: torchao, imported by transformers' quantizers when installed,
makes it warn per enum registered, and torch resets its top logger's level when dynamo loads."""


def quiet_libraries(verbose: bool) -> None:
    """Those loggers at ERROR (WARNING with --verbose)."""
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING if verbose else logging.ERROR)
