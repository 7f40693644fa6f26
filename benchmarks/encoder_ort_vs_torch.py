"""Benchmark: ONNX Runtime fp32 (edgekit export) vs PyTorch eager fp32 on all-MiniLM-L6-v2.

    python -m edgekit.benchmarks.encoder_ort_vs_torch [--repeat 60] [--out DIR]

Batch 1 and 8, sequence 128, both backends in one run (interleaved timing blocks, one process
each, same threads). Prints the p50 speed-up of ONNX Runtime over PyTorch per batch next to the
target: Optimum's export on ONNX Runtime measured 1.33x (batch 1) and 1.26x (batch 8) on the
development machine (2-core AMD EPYC), so edgekit aims for at least that.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TARGETS = {1: 1.33, 8: 1.26}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write bench.json/bench.md/bench.png here")
    args = parser.parse_args(argv)

    from edgekit.assets import MINILM, cached_export
    from edgekit.benchmarks.harness import BenchConfig, bench
    from edgekit.benchmarks.report import print_table

    artifact = cached_export(MINILM, "onnx")
    cfg = BenchConfig(artifacts=(artifact,), backends=("torch", "ort"), batches=tuple(TARGETS), seq_lens=(128,), warmup=5, repeat=args.repeat, rounds=args.rounds, threads=args.threads, out=args.out, overwrite=True)
    result = bench(cfg)
    print_table(result)
    summary = {}
    for batch, target in TARGETS.items():
        row = next(r for r in result["rows"] if r["backend"] == "ort" and r["batch"] == batch)
        summary[batch] = {"ort_p50_ms": row["p50_ms"], "speedup_vs_torch": row["speedup_vs_torch"], "target": target, "met": row["speedup_vs_torch"] >= target}
        print(f"batch {batch}: ONNX Runtime {row['speedup_vs_torch']:.2f}x PyTorch (p50 {row['p50_ms']:.1f} ms); target >= {target}x (Optimum + ORT here): {'met' if summary[batch]['met'] else 'NOT met'}")
    print(json.dumps({"benchmark": "encoder_ort_vs_torch", "model": MINILM.name, "threads": result["threads"], "summary": summary}))
    return summary


if __name__ == "__main__":
    main()
