"""What the stateless-graph kinds (encoders, vision encoders) share: the case a target's ``graph``
role receives, and the export of one such graph."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from edgekit.errors import InputError
from edgekit.export.job import ExportJob, convert_validate
from edgekit.export.options import WEIGHT_ONLY, check_int8_options


@dataclass(frozen=True)
class GraphCase:
    """A stateless graph at ``tmp/model.onnx``, converted and validated in fp32."""

    built: Any
    """The kind's built module (module, input/output names, tokenizer or image size)."""
    reference: Any
    """The PyTorch reference Session."""
    validation: dict
    """The fp32 validation on ONNX Runtime."""
    io: dict
    """The manifest's ``inputs`` and ``outputs``."""
    validate_ir: Callable[[Any, float], Any]
    """``(session, atol) -> ValidationReport``: the kind's cases run on another runtime's session."""
    cases: list = field(default_factory=list)
    """The kind's validation cases: (name, inputs)."""


def check_graph(cfg: Any, target: Any) -> None:
    if cfg.precision not in target.graph_precisions:
        if cfg.precision in WEIGHT_ONLY:
            raise InputError(
                f"--precision {cfg.precision} is weight-only, for decoders",
                "use --precision int8 for an encoder",
            )
        raise InputError(
            f"--precision {cfg.precision} is not available for --target {target.name}",
            f"use one of {', '.join(target.graph_precisions)}",
        )
    check_int8_options(cfg, target)


def export_graph(
    job: ExportJob, built: Any, reference: Any, cases: list, kwargs: dict, axes: dict, io: dict
) -> tuple[Any, dict, dict]:
    """Convert and validate the graph (or take the prior artifact's), then apply the target.
    Returns the converter info, the target's manifest section and the validation."""
    from edgekit.export.validate import compare

    info, validation = convert_validate(job, built, kwargs, axes, reference, cases)
    case = GraphCase(
        built,
        reference,
        validation,
        io,
        lambda session, atol: compare(reference, session, cases, atol),
        cases,
    )
    section, validation = job.target.graph(job, case)
    return info, section, validation
