"""The optimize report: a markdown table, a self-contained HTML page (the plot inline) and the
latency-quality plot with its Pareto front."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from edgekit.optimize.config import CAPTION_NEW_TOKENS, SEQ2SEQ_OUTPUTS, TASKS

COLUMNS = (
    ("cell", "cell", "{}"),
    ("state", "state", "{}"),
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p90 ms", "p90_ms", "{:.2f}"),
    ("items/s", "throughput_per_s", "{:.1f}"),
    ("size MB", "size_mb", "{:.1f}"),
    ("peak MB", "peak_rss_mb", "{:.0f}"),
    ("accuracy", "accuracy", "{:.4f}"),
    ("vs teacher", "relative_quality", "{:.3f}"),
    ("speed-up", "speedup_vs_teacher", "{:.2f}x"),
)
DECODER_COLUMNS = (
    COLUMNS[:2]
    + (
        ("token p50 ms", "p50_ms", "{:.2f}"),
        ("token p90 ms", "p90_ms", "{:.2f}"),
        ("tokens/s", "throughput_per_s", "{:.1f}"),
    )
    + COLUMNS[5:7]
    + (("perplexity", "perplexity", "{:.3f}"), ("greedy", "greedy_agreement", "{:.3f}"))
    + COLUMNS[8:]
)
"""Decoders: latency per generated token (batch 1), held-out perplexity and greedy agreement with the teacher."""

DUAL_TITLES = {"zero_shot_accuracy": "zero-shot acc", "i2t_r1": "i2t R@1"}
POWER = (("W", "avg_watts", "{:.2f}"), ("items/J", "per_joule", "{:.1f}"))
"""On a Jetson (tegrastats): average board watts while timed, and results per joule."""


def _value(cell: dict, key: str, fmt: str) -> str:
    value = cell.get(key)
    if value is None:
        return "-"
    return fmt.format(value)


def table(results: dict) -> tuple[list[str], list[list[str]]]:
    """The header and one row per cell; a Pareto cell is marked with *, a failed one shows its error."""
    front = set(results["pareto"])
    base = DECODER_COLUMNS if results["task"] == "causal-lm" else COLUMNS
    if results["task"] == "image-text":  # a text and an image per item; the metric the pairs allow
        titles = {"items/s": "pairs/s", "accuracy": DUAL_TITLES.get(results.get("metric"), "quality")}
        base = tuple((titles.get(t, t), k, f) for t, k, f in base)
    if results["task"] == "image-feature-extraction":
        base = tuple(("images/s" if t == "items/s" else t, k, f) for t, k, f in base)
    what = SEQ2SEQ_OUTPUTS.get(TASKS[results["task"]].kind)
    if what:  # an encoder-decoder's one output (caption, transcript, text): encoder, then the new tokens
        titles = {"p50 ms": f"{what} ms", "items/s": f"{what}s/s", "accuracy": "token F1"}
        base = tuple((titles.get(t, t), k, f) for t, k, f in base if k != "p90_ms")
    if results["task"] == "speech-ctc":  # every --eval-data file once; transcripts against the teacher's
        titles = {"p50 ms": "all files p50 ms", "p90 ms": "all files p90 ms", "items/s": "files/s"}
        base = tuple((titles.get(t, t), k, f) for t, k, f in base if k != "accuracy")
        base = (
            base[:5]
            + (("RTF", "rtf", "{:.4f}"),)
            + base[5:-2]
            + (("1 - CER", "accuracy", "{:.4f}"),)
            + base[-2:]
        )
    columns = base + (POWER if any("avg_watts" in c for c in results["cells"]) else ())
    header = [title for title, _, _ in columns] + ["stage time"]
    rows = []
    for cell in results["cells"]:
        row = [_value(cell, key, fmt) for _, key, fmt in columns]
        if cell["cell"] in front:
            row[0] += " *"
        if cell["state"] == "failed":
            row[1] = f"failed: {cell.get('error') or ''}"
        made = [s["seconds"] for s in cell.get("stages", {}).values() if s.get("seconds") is not None]
        row.append(f"{sum(made) / 60:.1f} min" if made else "-")
        rows.append(row)
    return header, rows


def verdicts(results: dict) -> list[str]:
    """One line per backend: the chosen cell, or that none kept the quality and which came closest."""
    by_name = {c["cell"]: c for c in results["cells"]}
    lines = []
    for backend, choice in results["best"].items():
        if choice.get("cell"):
            c = by_name[choice["cell"]]
            lines.append(
                f"{backend}: {c['cell']} -> {choice['folder']}/, {c['p50_ms']:.2f} ms p50 "
                f"({c.get('speedup_vs_teacher') or 0:.2f}x the teacher in PyTorch), "
                f"{c['relative_quality']:.3f} of the teacher's quality"
            )
        elif choice.get("closest"):
            lines.append(
                f"{backend}: no cell keeps the quality within --max-drop {results['max_drop']}; the closest is "
                f"{choice['closest']} (drop {choice['closest_drop']:.3f})"
            )
        else:
            lines.append(f"{backend}: no cell was made and benched")
    return lines


def _context(results: dict) -> str:
    cpu = results.get("cpu") or {}
    return (
        f"Teacher {results['teacher']}; task {results['task']}; quality: {results['quality_metric']}. "
        f"Latency {_case(results)}, {results.get('threads')} threads, "
        f"on {cpu.get('model', 'this CPU')}; every cell timed in one bench run"
        + (" (some benched separately after a failure)" if results.get("separate_bench_runs") else "")
        + ". * marks the latency-quality Pareto front."
    )


def print_table(results: dict) -> None:
    """The cells as a table on stdout (rich)."""
    from rich.console import Console
    from rich.table import Table

    header, rows = table(results)
    shown = Table(title="edgekit optimize (* = Pareto front)", title_justify="left")
    for i, title in enumerate(header):
        shown.add_column(title, justify="left" if i < 2 else "right", overflow="fold")
    for row in rows:
        shown.add_row(*row)
    Console(width=max(Console().width, 150)).print(shown)


def _case(results: dict) -> str:
    case = results["case"]
    if results["task"] == "speech-ctc":
        return "of every --eval-data file once (batch 1)"
    what = SEQ2SEQ_OUTPUTS.get(TASKS[results["task"]].kind)
    if what:  # an encoder-decoder: per caption, transcript or output
        return f"of one {what} (batch 1: the encoder, then {CAPTION_NEW_TOKENS} greedy tokens)"
    if not case:
        return "per generated token (batch 1, after a 32-token prompt)"
    return f"at batch {case['batch']}" + (f", sequence {case['seq_len']}" if "seq_len" in case else " images")


def markdown_report(results: dict, has_plot: bool) -> str:
    header, rows = table(results)
    lines = ["# edgekit optimize", "", _context(results), ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "## Best per backend", ""] + [f"- {v}" for v in verdicts(results)]
    if results.get("other_stages"):
        lines += [
            "",
            f"{len(results['other_stages'])} folders in stages/ are from runs with other options (reused if those "
            "options come back; delete them to free the space): " + ", ".join(results["other_stages"]),
        ]
    if has_plot:
        lines += ["", "![latency against quality](pareto.png)"]
    return "\n".join(lines) + "\n"


def html_report(results: dict, plot: Path | None) -> str:
    """One page with no outside references: styles inline, the plot as a data URI."""
    import base64

    header, rows = table(results)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in rows)
    image = ""
    if plot is not None:
        data = base64.b64encode(plot.read_bytes()).decode()
        image = f'<img alt="latency against quality" src="data:image/png;base64,{data}">'
    best = "".join(f"<li>{html.escape(v)}</li>" for v in verdicts(results))
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>edgekit optimize</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        "img{max-width:100%}</style></head><body><h1>edgekit optimize</h1>"
        f"<p>{html.escape(_context(results))}</p><table><tr>{head}</tr>{body}</table>"
        f"<h2>Best per backend</h2><ul>{best}</ul>{image}</body></html>\n"
    )


def pareto_plot(results: dict, path: Path) -> bool:
    """p50 latency against quality relative to the teacher, one point per cell, the front as a line;
    False when matplotlib is not installed or no cell has both figures."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    points: list[Any] = [
        c
        for c in results["cells"]
        if c["state"] == "ok" and c.get("p50_ms") and c.get("relative_quality") is not None
    ]
    if not points:
        return False
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, c in enumerate(sorted(points, key=lambda c: c["p50_ms"])):
        colour = "tab:green" if c["within_max_drop"] else "tab:gray"
        ax.scatter(c["p50_ms"], c["relative_quality"], color=colour)
        ax.annotate(  # labels alternate above and below, so neighbours do not print over each other
            c["cell"],
            (c["p50_ms"], c["relative_quality"]),
            fontsize=7,
            xytext=(4, 4 if i % 2 else -10),
            textcoords="offset points",
        )
    front = [c for name in results["pareto"] for c in points if c["cell"] == name]
    ax.plot(
        [c["p50_ms"] for c in front],
        [c["relative_quality"] for c in front],
        "--",
        color="tab:blue",
        label="Pareto front",
    )
    limit = round(1 - results["max_drop"], 6)
    label = f"--max-drop {results['max_drop']:.4g} (quality {limit:g})"
    ax.axhline(limit, color="tab:red", linewidth=0.8, label=label)
    ax.set_xlabel(f"p50 latency, ms ({_case(results).replace('at batch', 'batch')})")
    ax.set_ylabel("quality relative to the teacher")
    ax.set_xscale("log")
    from matplotlib.ticker import ScalarFormatter

    for formatter in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        formatter(ScalarFormatter())  # plain milliseconds, not 2 x 10^1
    ax.tick_params(axis="x", which="minor", labelsize=7)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
