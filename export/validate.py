"""Compare an exported model with PyTorch on real text. Over tolerance is an error, not a warning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.calibration.text import sample_texts, tokenize_fixed, tokenize_natural
from edgekit.errors import ValidationError


@dataclass
class ValidationReport:
    atol: float
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    cases: list[dict[str, Any]] = field(default_factory=list)
    passed: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"atol": self.atol, "passed": self.passed, "max_abs_diff": self.max_abs_diff, "cases": self.cases}


def encoder_cases(tokenizer, input_names: list[str], max_length: int) -> list[tuple[str, dict[str, np.ndarray]]]:
    """Real inputs: single texts of several lengths, a batch at a longer length, and a padded batch."""
    texts = sample_texts(min_words=200)
    short = sample_texts()
    cases = []
    for i, length in enumerate(sorted({min(n, max_length) for n in (8, 32, 128)})):
        cases.append((f"batch1_len{length}", tokenize_fixed(tokenizer, texts, 1, length, input_names, offset=i)))
    cases.append((f"batch4_len{min(64, max_length)}", tokenize_fixed(tokenizer, texts, 4, min(64, max_length), input_names, offset=3)))
    padded = ["Rain later.", short[0], short[1] + " " + short[2]]
    cases.append(("padded_batch3", tokenize_natural(tokenizer, padded, input_names, max_length=max_length)))
    return cases


def compare(reference, candidate, cases, atol: float) -> ValidationReport:
    """Run both sessions on every case; record max |diff| per output and case."""
    report = ValidationReport(atol=atol)
    for case_name, inputs in cases:
        expected = reference.run(inputs)
        got = candidate.run(inputs)
        row: dict[str, Any] = {"case": case_name, "shape": list(next(iter(inputs.values())).shape)}
        for name, ref in expected.items():
            if name not in got:
                raise ValidationError(f"exported model has no output '{name}'", "this is a bug in the export spec; please report it")
            out = got[name]
            if out.shape != ref.shape:
                raise ValidationError(f"output '{name}' has shape {out.shape}, PyTorch gives {ref.shape} (case {case_name})", "this is a bug in the export spec; please report it")
            diff = float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
            if not np.isfinite(diff):
                diff = float("inf")
            row[name] = diff
            report.max_abs_diff[name] = max(report.max_abs_diff.get(name, 0.0), diff)
        report.cases.append(row)
    worst = max(report.max_abs_diff.items(), key=lambda kv: kv[1])
    report.passed = worst[1] <= atol
    return report


def require_pass(report: ValidationReport) -> None:
    if not report.passed:
        name, diff = max(report.max_abs_diff.items(), key=lambda kv: kv[1])
        raise ValidationError(
            f"exported model differs from PyTorch: max |diff| of '{name}' is {diff:.3g} > atol {report.atol:g}",
            "nothing was written; rerun with --verbose, try --exporter torchscript, or raise --atol if the difference is expected",
        )
