"""From the stages' outcomes and the bench run to the answer: one row per cell (latency, size,
memory, quality against the teacher), the Pareto front, the best cell per backend, and the files
of the optimize folder (results.json, report.md, report.html, pareto.png, best-<backend>/)."""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path
from typing import Any

from edgekit.optimize.config import (
    SEQ2SEQ_OUTPUTS,
    TASKS,
    OptimizeConfig,
    is_ctc,
    is_decoder,
    is_dual,
    is_seq2seq,
    is_vision,
)
from edgekit.optimize.plan import Plan

QUALITY = {
    False: "5-fold probe accuracy on --eval-data, relative to the teacher in PyTorch fp32",
    True: "perplexity on --eval-data, the teacher's in PyTorch fp32 over the cell's; greedy agreement with the teacher on 3 prompts",
}
DUAL_QUALITY = {
    "zero_shot_accuracy": "zero-shot accuracy on the labelled --eval-data pairs, relative to the teacher in PyTorch fp32",
    "i2t_r1": "image-to-text recall@1 on the --eval-data pairs, relative to the teacher in PyTorch fp32",
}
CTC_QUALITY = "transcript agreement with the teacher in PyTorch fp32 (1 - character error rate) over the --eval-data WAV files"
SEQ2SEQ_QUALITY = {
    "captioner": "token F1 of the greedy captions of the --eval-data photos against the teacher's in PyTorch fp32",
    "transcriber": "token F1 of the greedy transcripts of the --eval-data WAV files against the teacher's in PyTorch fp32",
    "text2text": "token F1 of the greedy outputs for the --eval-data texts against the teacher's in PyTorch fp32",
}
VISION_QUALITY = "5-fold probe accuracy on the features of the labelled --eval-data images, relative to the teacher in PyTorch fp32"
REPORT_FILES = ("results.json", "report.md", "report.html", "pareto.png")


def manifest(cfg: OptimizeConfig, state: str, **extra: Any) -> dict[str, Any]:
    from edgekit import __version__
    from edgekit.artifacts import MANIFEST_SCHEMA, environment, now_iso, to_jsonable

    return {
        "schema": MANIFEST_SCHEMA,
        "stage": "optimize",
        "edgekit_version": __version__,
        "state": state,
        "updated_at": now_iso(),
        "config": to_jsonable(cfg),
        "seed": cfg.seed,
        **extra,
        "environment": environment(),
    }


def _stage_seconds(folder: Path) -> float | None:
    """How long a finished stage took, from its manifest's timestamps (also for a reused stage)."""
    from edgekit.artifacts import read_json

    try:
        m = read_json(folder / "manifest.json", "")
        began, ended = (datetime.datetime.fromisoformat(m[k]) for k in ("created_at", "finished_at"))
        return (ended - began).total_seconds()
    except (OSError, KeyError, ValueError, TypeError):
        return None


MODEL_SUFFIXES = (".safetensors", ".bin", ".onnx", ".data", ".xml", ".ort", ".pte", ".engine", ".gguf")


def _size_mb(folder: Path) -> float | None:
    """The model files' size (weights and graphs; not tokenizers, configs or reports)."""
    sizes = [p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and p.suffix in MODEL_SUFFIXES]
    return sum(sizes) / 2**20 if sizes else None


def _find(items: list[dict], folder: str, backend: str, **case: Any) -> dict | None:
    return next(
        (
            r
            for r in items
            if r["artifact"] == folder
            and r["backend"] == backend
            and all(r.get(k) == v for k, v in case.items())
        ),
        None,
    )


DECODER_FIGURES = {
    "p50_ms": "per_token_p50_ms",
    "p90_ms": "per_token_p90_ms",
    "throughput_per_s": "tokens_per_s",
}
"""A decoder cell's latency is per generated token and its throughput tokens/s (batch 1)."""


def _figures(row: dict, decoder: bool) -> dict[str, Any]:
    keys = ("p50_ms", "p90_ms", "throughput_per_s", "peak_rss_mb", "avg_watts", "per_joule", "rtf")
    names = {k: (DECODER_FIGURES.get(k, k) if decoder else k) for k in keys}
    return {k: row.get(name) for k, name in names.items() if name in row}


def _dual_row(rows: list[dict], folder: str, backend: str, case: dict) -> dict | None:
    """An image-text cell's two tower rows as one: latency of a text and an image at the batch
    (the two towers' p50 summed), pairs per second, the worker's peak memory."""
    text = _find(rows, folder, backend, tower="text", **case)
    vision = _find(rows, folder, backend, tower="vision", batch=case["batch"])
    if text is None or vision is None:
        return None
    row = {k: text[k] + vision[k] for k in ("p50_ms", "p90_ms")}
    row.update(
        throughput_per_s=case["batch"] / (row["p50_ms"] / 1e3),
        peak_rss_mb=max(text.get("peak_rss_mb") or 0, vision.get("peak_rss_mb") or 0) or None,
        text_p50_ms=text["p50_ms"],
        vision_p50_ms=vision["p50_ms"],
    )
    return row


def _ctc_row(rows: list[dict], folder: str, backend: str, case: dict) -> dict | None:
    """A speech cell's utterance rows as one: the time to transcribe every --eval-data file once
    (p50s summed), files per second, the real-time factor over all of the audio."""
    mine = [r for r in rows if r["artifact"] == folder and r["backend"] == backend]
    if not mine:
        return None
    row = {k: sum(r[k] for r in mine) for k in ("p50_ms", "p90_ms", "audio_s")}
    row.update(
        throughput_per_s=len(mine) / (row["p50_ms"] / 1e3),
        rtf=row["p50_ms"] / 1e3 / row["audio_s"],
        peak_rss_mb=max(r.get("peak_rss_mb") or 0 for r in mine) or None,
    )
    return row


def ctc_quality(rows: list[dict], reference: str) -> list[dict]:
    """Per artifact and backend: 1 - the character error rate of its transcripts against the
    teacher's in PyTorch, over every utterance (0 at worst)."""
    from edgekit.numerics import error_rate

    def texts(artifact: str, backend: str) -> dict[str, str]:
        return {
            r["utterance"]: r["transcript"]
            for r in rows
            if (r["artifact"], r["backend"]) == (artifact, backend)
        }

    ref = texts(reference, "torch")
    out = []
    for artifact, backend in dict.fromkeys((r["artifact"], r["backend"]) for r in rows):
        got = texts(artifact, backend)
        names = [n for n in ref if n in got]
        if names:
            cer = error_rate([ref[n] for n in names], [got[n] for n in names])
            out.append({"artifact": artifact, "backend": backend, "transcript_agreement": max(0.0, 1 - cer)})
    return out


def _seq2seq_row(rows: list[dict], folder: str, backend: str, case: dict) -> dict | None:
    """An encoder-decoder cell's row: the time to one output (the encoder's p50, then the first
    decoder step, then the other new tokens at the per-token p50), outputs per second."""
    row = _find(rows, folder, backend)
    if row is None:
        return None
    caption_ms = row["ttft_ms"] + (row["new_tokens"] - 1) * row["per_token_p50_ms"]
    return {
        "p50_ms": caption_ms,
        "throughput_per_s": 1e3 / caption_ms,
        "peak_rss_mb": row.get("peak_rss_mb"),
        "encoder_ms": row["encoder_ms"],
        "tokens_per_s": row["tokens_per_s"],
    }


ROWS = {"dual": _dual_row, "ctc": _ctc_row, **{kind: _seq2seq_row for kind in SEQ2SEQ_OUTPUTS}}
"""How a cell's bench rows become its one row, by task kind (default: the row of the timed case)."""


def dual_metric(quality: list[dict]) -> str:
    """Image-text quality: zero-shot accuracy where the eval pairs have labels, else image-to-text R@1."""
    return "zero_shot_accuracy" if any("zero_shot_accuracy" in q for q in quality) else "i2t_r1"


def _measure(
    row: dict | None, quality: dict | None, teacher: dict, decoder: bool, metric: str = "accuracy"
) -> dict[str, Any]:
    """A cell's figures, and its quality relative to the teacher's: accuracy / the teacher's for
    encoders; the teacher's perplexity / the cell's for decoders (1 = as good, lower = worse)."""
    figures: dict[str, Any] = _figures(row, decoder) if row is not None else {}
    if teacher.get("p50_ms") and figures.get("p50_ms"):
        figures["speedup_vs_teacher"] = teacher["p50_ms"] / figures["p50_ms"]
    if quality is None:
        return figures
    if decoder:
        figures.update({k: quality[k] for k in ("perplexity", "greedy_agreement") if k in quality})
        if quality.get("perplexity") and teacher.get("perplexity"):
            figures["relative_quality"] = teacher["perplexity"] / quality["perplexity"]
    else:
        figures["accuracy"] = quality.get(metric)
        if quality.get(metric) is not None and teacher.get(metric):
            figures["relative_quality"] = quality[metric] / teacher[metric]
    if "relative_quality" in figures:
        figures["drop"] = 1 - figures["relative_quality"]
    return figures


def collect(
    cfg: OptimizeConfig,
    plan: Plan,
    outcomes: dict,
    bench_result: dict | None,
    bench_errors: dict[str, str],
    stages_dir: Path,
) -> dict[str, Any]:
    """results.json: the teacher's row, every cell's row, the Pareto front and the best per backend."""
    rows = bench_result["rows"] if bench_result else []
    quality = bench_result["quality"] if bench_result else []
    decoder, dual, ctc = is_decoder(cfg.task), is_dual(cfg.task), is_ctc(cfg.task)
    case = _case(cfg)
    ref = plan.stage(plan.reference).folder
    if ctc:  # the bench rows carry each utterance's transcript
        quality = ctc_quality(rows, ref)
    metric = (
        dual_metric(quality)
        if dual
        else "transcript_agreement"
        if ctc
        else f"{SEQ2SEQ_OUTPUTS[TASKS[cfg.task].kind]}_token_f1"
        if is_seq2seq(cfg.task)
        else "accuracy"
    )
    kind_row = ROWS.get(TASKS[cfg.task].kind)

    def find_row(folder: str, backend: str) -> dict | None:
        return kind_row(rows, folder, backend, case) if kind_row else _find(rows, folder, backend, **case)

    t_row, t_quality = find_row(ref, "torch"), _find(quality, ref, "torch")
    teacher = {**_figures(t_row or {}, decoder), **(t_quality or {})}
    cells = [
        {
            "cell": "teacher torch fp32",
            "source": "teacher",
            "backend": "torch",
            "precision": "fp32",
            "state": "ok" if t_row else "failed",
            "size_mb": _size_mb(Path(cfg.model).expanduser()),
            **_measure(t_row, t_quality, teacher, decoder, metric),
        }
    ]
    for cell in plan.cells:
        stage = plan.stage(cell.stage)
        entry, error = _cell_entry(plan, cell, outcomes, bench_errors, stages_dir)
        folder = stages_dir / stage.folder
        row, q = find_row(stage.folder, cell.backend), _find(quality, stage.folder, cell.backend)
        if error is None and row is None:
            error = "no bench row"
        error = error or (q or {}).get("error")
        entry.update(
            state="failed" if error else "ok", error=error, size_mb=_size_mb(folder) if not error else None
        )
        if not error:
            entry.update(_measure(row, q, teacher, decoder, metric))
        cells.append(entry)
    for entry in cells:
        drop = entry.get("drop")
        entry["within_max_drop"] = drop is not None and drop <= cfg.max_drop + 1e-12
    return {
        "teacher": str(Path(cfg.model).expanduser().resolve()),
        "task": cfg.task,
        "quality_metric": _quality_text(cfg.task, metric),
        "metric": "perplexity" if decoder else metric,
        "max_drop": cfg.max_drop,
        "case": case,
        "threads": (bench_result or {}).get("threads"),
        "separate_bench_runs": bool((bench_result or {}).get("separate_runs")),
        "cpu": (bench_result or {}).get("cpu"),
        "cells": cells,
        "other_stages": _other_stages(plan, stages_dir, bench_result),
        "pareto": pareto(cells),
        "best": best_per_backend(cfg, cells),
    }


def _case(cfg: OptimizeConfig) -> dict[str, Any]:
    """The bench case cells are compared at: none for decoders (per token) and speech (every
    file once), the batch for images, batch and sequence for text encoders."""
    if is_decoder(cfg.task) or is_ctc(cfg.task) or is_seq2seq(cfg.task):
        return {}
    if is_vision(cfg.task):
        return {"batch": cfg.batch}
    return {"batch": cfg.batch, "seq_len": cfg.bench_seq_len}


def _cell_entry(
    plan: Plan, cell, outcomes: dict, bench_errors: dict, stages_dir: Path
) -> tuple[dict, str | None]:
    """A cell's name, artifact and stages (with their states and times), and the first error on its way."""
    stage = plan.stage(cell.stage)
    chain = [plan.stage(n) for n in _chain(plan, stage.name)]
    error = next((outcomes[s.name].error for s in chain if not outcomes[s.name].ok), None)
    entry = {
        "cell": f"{cell.source} {cell.backend} {cell.precision}",
        "source": cell.source,
        "backend": cell.backend,
        "precision": cell.precision,
        "artifact": str(Path("stages") / stage.folder),
        "stages": {
            s.name: {"state": outcomes[s.name].state, "seconds": _stage_seconds(stages_dir / s.folder)}
            for s in chain
        },
    }
    return entry, error or bench_errors.get(cell.stage)


def _quality_text(task: str, metric: str) -> str:
    """What a task's quality figure is, for the report."""
    kind = TASKS[task].kind
    texts = {
        "dual": DUAL_QUALITY.get(metric),
        "ctc": CTC_QUALITY,
        "vision": VISION_QUALITY,
        **SEQ2SEQ_QUALITY,
    }
    return texts.get(kind) or QUALITY[kind == "decoder"]


def _other_stages(plan: Plan, stages_dir: Path, bench_result: dict | None) -> list[str]:
    """Folders in stages/ that this plan did not use (earlier options): kept, since a rerun with
    those options reuses them, and listed so the user can delete them to free the space."""
    used = {s.folder for s in plan.stages}
    bench_out = ((bench_result or {}).get("config") or {}).get("out")
    if bench_out:
        used.add(Path(bench_out).name)
    return sorted(
        p.name
        for p in stages_dir.iterdir()
        if p.is_dir()
        and p.name not in used
        and not p.name.startswith((".", "calib-"))
        and not p.name.endswith(".work")
    )


def _chain(plan: Plan, name: str) -> list[str]:
    """The stage and every stage it reads from, first to last."""
    stage = plan.stage(name)
    return [n for i in stage.inputs for n in _chain(plan, i)] + [name]


def pareto(cells: list[dict]) -> list[str]:
    """Cells no other cell beats on both latency (p50) and quality."""
    ok = [
        c for c in cells if c["state"] == "ok" and c.get("p50_ms") and c.get("relative_quality") is not None
    ]
    front, best_quality = [], -1.0
    for c in sorted(ok, key=lambda c: (c["p50_ms"], -c["relative_quality"])):
        if c["relative_quality"] > best_quality:
            front.append(c["cell"])
            best_quality = c["relative_quality"]
    return front


def best_per_backend(cfg: OptimizeConfig, cells: list[dict]) -> dict[str, dict]:
    """Per backend: the fastest cell within --max-drop; if none, the closest (smallest drop)."""
    best = {}
    for backend in cfg.backends:
        ok = [c for c in cells if c["backend"] == backend and c["state"] == "ok" and c.get("p50_ms")]
        within = [c for c in ok if c["within_max_drop"]]
        if within:
            chosen = min(within, key=lambda c: c["p50_ms"])
            best[backend] = {
                "cell": chosen["cell"],
                "artifact": chosen["artifact"],
                "folder": f"best-{backend}",
            }
        else:
            rated = [c for c in ok if c.get("drop") is not None]
            closest = min(rated, key=lambda c: c["drop"]) if rated else None
            best[backend] = {
                "cell": None,
                "closest": closest["cell"] if closest else None,
                "closest_drop": closest["drop"] if closest else None,
            }
    return best


def write_outputs(
    cfg: OptimizeConfig, out: Path, plan: Plan, results: dict, stages_dir: Path, started: str
) -> None:
    """The report files (each written beside and renamed into place), the best-<backend> copies, the manifest."""
    import tempfile

    from edgekit.artifacts import sha256_file, staged_output, write_json
    from edgekit.optimize.report import html_report, markdown_report, pareto_plot

    with tempfile.TemporaryDirectory(dir=out, prefix=".report.tmp-") as tmp_name:
        tmp = Path(tmp_name)
        write_json(tmp / "results.json", results)
        png = pareto_plot(results, tmp / "pareto.png")
        (tmp / "report.md").write_text(markdown_report(results, png))
        (tmp / "report.html").write_text(html_report(results, tmp / "pareto.png" if png else None))
        for name in REPORT_FILES:
            if (tmp / name).exists():
                os.replace(tmp / name, out / name)
    for backend, choice in results["best"].items():
        target = out / f"best-{backend}"
        if choice.get("cell") is None:
            if target.is_dir() and (target / "manifest.json").is_file():
                shutil.rmtree(target)  # an earlier run's choice that no cell of this run meets
            continue
        with staged_output(target, overwrite=True) as tmp:
            shutil.copytree(out / choice["artifact"], tmp, dirs_exist_ok=True)
    files = {
        n: {"bytes": (out / n).stat().st_size, "sha256": sha256_file(out / n)}
        for n in REPORT_FILES
        if (out / n).exists()
    }
    write_json(
        out / "manifest.json",
        manifest(cfg, "finished", created_at=started, best=results["best"], files=files),
    )
