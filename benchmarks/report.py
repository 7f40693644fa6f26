"""Render bench results: a terminal table (rich), Markdown, and a PNG plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLUMNS = (
    ("artifact", "artifact", "{}"),
    ("backend", "backend", "{}"),
    ("batch", "batch", "{}"),
    ("seq_len", "seq", "{}"),
    ("p50_ms", "p50 ms", "{:.2f}"),
    ("p90_ms", "p90 ms", "{:.2f}"),
    ("p99_ms", "p99 ms", "{:.2f}"),
    ("throughput_per_s", "items/s", "{:.1f}"),
    ("speedup_vs_torch", "vs torch", "{:.2f}x"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    ("model_mb", "model MB", "{:.1f}"),
    ("cosine", "cos vs torch", "{:.6f}"),
)


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    if key == "cosine":
        value = next((v for k, v in row.items() if k.startswith("cosine.")), None)
    else:
        value = row.get(key)
    if value is None:
        return "-"
    return fmt.format(value)


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    return [[_cell(row, key, fmt) for key, _, fmt in COLUMNS] for row in result["rows"]]


def markdown_table(result: dict[str, Any]) -> str:
    header = [title for _, title, _ in COLUMNS]
    lines = [
        f"# edgekit bench ({result['created_at']})",
        "",
        f"Threads: {result['threads']}. Inputs: {result['inputs']}. Latency over {result['rows'][0]['runs'] if result['rows'] else 0} timed runs per row, interleaved across backends.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(result)]
    return "\n".join(lines) + "\n"


def wide_console():
    """A console for tables: the terminal's width, or 200 columns when output is not a terminal."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)


def print_table(result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"edgekit bench · {result['threads']} threads")
    for _, title, _ in COLUMNS:
        table.add_column(title, justify="left" if title in ("artifact", "backend") else "right")
    for cells in table_rows(result):
        table.add_row(*cells)
    wide_console().print(table)


def plot(result: dict[str, Any], path: Path) -> bool:
    """p50 latency per case and backend as grouped bars; skipped (False) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = result["rows"]
    cases = sorted({(r["batch"], r["seq_len"]) for r in rows})
    series = sorted({(r["artifact"], r["backend"]) for r in rows})
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(5, 1.8 * len(cases) * max(1, len(series)) / 2), 3.6))
    for i, (artifact, backend) in enumerate(series):
        values = [next((r["p50_ms"] for r in rows if r["artifact"] == artifact and r["backend"] == backend and (r["batch"], r["seq_len"]) == c), 0) for c in cases]
        ax.bar([j + i * width for j in range(len(cases))], values, width, label=f"{artifact} · {backend}" if len({a for a, _ in series}) > 1 else backend)
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(cases))])
    ax.set_xticklabels([f"batch {b}\nseq {s}" for b, s in cases])
    ax.set_ylabel("p50 latency (ms)")
    ax.set_title("edgekit bench")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
