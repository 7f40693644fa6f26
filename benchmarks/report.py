"""Render bench results: a terminal table (rich), Markdown, and a PNG plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.benchmarks.generation import GENERATING, PER_CONTEXT_STEPS

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


GEN_COLUMNS = (
    ("artifact", "artifact", "{}"),
    ("backend", "backend", "{}"),
    ("tokens_per_s", "decode tok/s", "{:.1f}"),
    ("speedup_vs_torch", "vs torch", "{:.2f}x"),
    ("ttft_ms", "TTFT ms", "{:.1f}"),
    ("per_token_p50_ms", "token p50 ms", "{:.2f}"),
    ("per_token_p90_ms", "token p90 ms", "{:.2f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    ("model_mb", "model MB", "{:.1f}"),
)


def _generating(result: dict[str, Any]) -> str | None:
    """'text-generation' (KV-cache decoders), 'seq2seq' (encoder-decoders) or None (encoders)."""
    rows = result["rows"]
    kind = rows[0].get("kind") if rows else None
    return kind if kind in GENERATING else None


POWER_COLUMNS = (
    ("avg_watts", "W", "{:.2f}"),
    ("per_joule", "per J", "{:.1f}"),
    ("max_temp_c", "max C", "{:.1f}"),
)
"""Shown when tegrastats measured power (a Jetson): average watts, results per joule, hottest sensor."""


def columns_for(result: dict[str, Any]) -> tuple:
    columns = _columns_for(result)
    if any("avg_watts" in row for row in result["rows"]):
        columns += POWER_COLUMNS
    return columns


def _columns_for(result: dict[str, Any]) -> tuple:
    kind = _generating(result)
    if kind:
        contexts = result["config"].get("contexts") or []
        extra = tuple((f"per_token_ms@{c}", f"token ms @{c}", "{:.2f}") for c in contexts)
        extra += tuple((f"recompute_ms@{c}", f"no-cache ms @{c}", "{:.1f}") for c in contexts)
        head = (
            GEN_COLUMNS[:5] + (("encoder_ms", "encoder ms", "{:.1f}"),) + GEN_COLUMNS[5:]
            if kind == "seq2seq"
            else GEN_COLUMNS
        )
        return head + extra
    if any("utterance" in row for row in result["rows"]):  # CTC speech: per utterance, real-time factor
        from edgekit.benchmarks.ctc_bench import CTC_COLUMNS

        return CTC_COLUMNS
    if any("tower" in row for row in result["rows"]):  # image-text: each tower timed on its own
        return COLUMNS[:2] + (("tower", "tower", "{}"),) + COLUMNS[2:]
    return COLUMNS


def _cell(row: dict[str, Any], key: str, fmt: str) -> str:
    if key == "cosine":
        value = next((v for k, v in row.items() if k.startswith("cosine.")), None)
    else:
        value = row.get(key)
    if value is None:
        return "-"
    return fmt.format(value)


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    return [[_cell(row, key, fmt) for key, _, fmt in columns_for(result)] for row in result["rows"]]


def cpu_line(result: dict[str, Any]) -> str:
    cpu = result.get("cpu")
    if not cpu:
        return ""
    features = ", ".join(cpu["features"]) or "none of note"
    return f"CPU: {cpu['model']}, {cpu['usable_cores']} usable cores ({features})."


def _describe(result: dict[str, Any]) -> str:
    rows = result["rows"]
    runs = rows[0]["runs"] if rows else 0
    kind = _generating(result)
    if kind:
        cfg = result["config"]
        after = (
            f"a {cfg['prompt_len']}-token prompt of real text"
            if kind == "text-generation"
            else f"the decoder start token; encoder input: {rows[0]['encoder_input']}; TTFT = encoder + first decoder step"
        )
        return (
            f"Threads: {result['threads']}. Batch 1, greedy, EOS ignored: {cfg['new_tokens']} new tokens after {after}, "
            f"{runs} runs per backend interleaved; per-token latency at each context over {PER_CONTEXT_STEPS} steps; no-cache = a full "
            f"{'forward' if kind == 'text-generation' else 'decoder pass'} over the context."
        )
    images = f" Images: {result['images']}." if result.get("images") else ""
    return f"Threads: {result['threads']}. Inputs: {result['inputs']}.{images} Latency over {runs} timed runs per row, interleaved across backends."


def markdown_table(result: dict[str, Any]) -> str:
    header = [title for _, title, _ in columns_for(result)]
    lines = [
        f"# edgekit bench ({result['created_at']})",
        "",
        _describe(result),
        "",
        cpu_line(result),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(result)]
    if result.get("quality"):
        columns = quality_columns(result)
        lines += ["", f"{quality_title(result)} ({result['config'].get('eval_data')}):", ""]
        lines += [
            "| " + " | ".join(title for _, title in columns) + " |",
            "|" + "|".join("---" for _ in columns) + "|",
        ]
        lines += ["| " + " | ".join(cells) + " |" for cells in quality_rows(result)]
    return "\n".join(lines) + "\n"


def quality_columns(result: dict[str, Any]) -> tuple:
    from edgekit.benchmarks.caption_bench import OUTPUT_KINDS
    from edgekit.benchmarks.caption_bench import quality_columns as seq2seq_columns
    from edgekit.benchmarks.dual_bench import QUALITY_COLUMNS as DUAL_COLUMNS

    first = result["quality"][0]
    if "pairs" in first:
        return DUAL_COLUMNS
    for kind in OUTPUT_KINDS.values():  # encoder-decoders: what they write, against fp32's
        if f"{kind}_exact" in first or f"{kind}s" in first:
            return seq2seq_columns(kind)
    return QUALITY_COLUMNS


def quality_title(result: dict[str, Any]) -> str:
    first = result["quality"][0]
    counted = {
        "pairs": "image-text pairs",
        "images": "eval images",
        "texts": "eval texts",
        "inputs": "eval inputs",
    }
    what = next(f"{first[k]} {name}" for k, name in counted.items() if k in first)
    return f"Quality against the fp32 PyTorch reference on {what}"


QUALITY_COLUMNS = (
    ("artifact", "artifact"),
    ("backend", "backend"),
    ("mean_cosine", "mean cosine"),
    ("accuracy", "5-fold accuracy"),
    ("relative_accuracy", "vs fp32"),
)


def quality_rows(result: dict[str, Any]) -> list[list[str]]:
    def fmt(row: dict[str, Any], key: str) -> str:
        value = row.get(key)
        if value is None:
            return "-"
        return f"{value:.4f}" if isinstance(value, float) else str(value)

    if not result.get("quality"):
        return []
    return [[fmt(row, key) for key, _ in quality_columns(result)] for row in result["quality"]]


def wide_console():
    """A console for tables: the terminal's width, or 200 columns when output is not a terminal."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)


def print_table(result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"edgekit bench · {result['threads']} threads", caption=cpu_line(result) or None)
    for _, title, _ in columns_for(result):
        table.add_column(title, justify="left" if title in ("artifact", "backend") else "right")
    for cells in table_rows(result):
        table.add_row(*cells)
    if result.get("quality"):
        wide_console().print(table)
        table = Table(title=quality_title(result))
        for _, title in quality_columns(result):
            table.add_column(title, justify="left" if title in ("artifact", "backend") else "right")
        for cells in quality_rows(result):
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
    if _generating(result):
        return _plot_generation(result, path, plt)
    cases = sorted({_case(r) for r in rows})
    series = sorted({(r["artifact"], r["backend"]) for r in rows})
    width = 0.8 / max(1, len(series))
    fig, ax = plt.subplots(figsize=(max(5, 1.8 * len(cases) * max(1, len(series)) / 2), 3.6))
    for i, (artifact, backend) in enumerate(series):
        values = [
            next(
                (
                    r["p50_ms"]
                    for r in rows
                    if r["artifact"] == artifact and r["backend"] == backend and _case(r) == c
                ),
                0,
            )
            for c in cases
        ]
        ax.bar(
            [j + i * width for j in range(len(cases))],
            values,
            width,
            label=f"{artifact} · {backend}" if len({a for a, _ in series}) > 1 else backend,
        )
    ax.set_xticks([j + width * (len(series) - 1) / 2 for j in range(len(cases))])
    ax.set_xticklabels(
        [(f"{t}\n" if t else "") + f"batch {b}" + (f"\nseq {s}" if s else "") for t, b, s in cases]
    )
    ax.set_ylabel("p50 latency (ms)")
    ax.set_title("edgekit bench")
    ax.legend(fontsize=8)
    return _save(fig, path, plt)


def _case(row: dict[str, Any]) -> tuple[str, int, int]:
    """(tower, batch, sequence) of a latency row; the vision tower has no sequence (0)."""
    return row.get("tower", ""), row["batch"], row["seq_len"] or 0


def _save(fig, path: Path, plt) -> bool:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _plot_generation(result: dict[str, Any], path: Path, plt) -> bool:
    """Per-token latency against context length, cached and recomputed, per backend."""
    contexts = result["config"]["contexts"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for row in result["rows"]:
        label = f"{row['artifact']} · {row['backend']}"
        ax.plot(contexts, [row[f"per_token_ms@{c}"] for c in contexts], marker="o", label=f"{label} (cache)")
        ax.plot(
            contexts,
            [row[f"recompute_ms@{c}"] for c in contexts],
            marker="x",
            linestyle="--",
            label=f"{label} (no cache)",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("ms per token")
    ax.set_title("edgekit bench · generation")
    ax.legend(fontsize=7)
    return _save(fig, path, plt)
