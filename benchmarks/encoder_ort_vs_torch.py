"""Benchmark: ONNX Runtime fp32 (edgekit export) vs PyTorch eager fp32 on all-MiniLM-L6-v2.

    python -m edgekit.benchmarks.encoder_ort_vs_torch [--repeat 60] [--out DIR]

Batch 1 and 8, sequence 128, both backends in one run (interleaved timing blocks, one process
each, same threads). Prints the p50 speed-up of ONNX Runtime over PyTorch per batch next to the
target: Optimum's export on ONNX Runtime measured 1.33x (batch 1) and 1.26x (batch 8) on the
development machine (2-core AMD EPYC), so edgekit aims for at least that.

With ``--optimum-python PY`` (the python of a virtualenv where ``pip install torch==2.13.0
"optimum[onnxruntime]"`` was run; Optimum needs transformers < 4.58, so it cannot share edgekit's
environment) the same run also exports MiniLM with Optimum and times its graph on the same ONNX
Runtime, interleaved with the others, so the peer ratio is measured, not quoted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from edgekit.artifacts import cpu_info

TARGETS = {1: 1.33, 8: 1.26}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=90)
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved timing blocks per case (default: blocks of 3 runs)",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write bench.json/bench.md/bench.png here")
    parser.add_argument(
        "--optimum-python",
        default=None,
        help="python of a virtualenv with optimum[onnxruntime], to time its export in the same run",
    )
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)

    from edgekit.assets import MINILM
    from edgekit.benchmarks.harness import BenchConfig, bench
    from edgekit.benchmarks.report import print_table
    from edgekit.export.cached import cached_export

    artifact = cached_export(MINILM, "onnx")
    artifacts = [artifact]
    workdir = Path(tempfile.mkdtemp(prefix="edgekit-bench-"))
    if args.optimum_python:
        from edgekit.benchmarks.peers import optimum_encoder

        artifacts.append(optimum_encoder(args.optimum_python, MINILM.path(), workdir / "optimum-onnx"))
    cfg = BenchConfig(
        artifacts=tuple(artifacts),
        backends=("torch", "ort"),
        batches=tuple(TARGETS),
        seq_lens=(128,),
        warmup=5,
        repeat=args.repeat,
        rounds=args.rounds,
        threads=args.threads,
        out=args.out,
        overwrite=True,
    )
    result = bench(cfg)
    print_table(result)
    summary = {}
    ours_name = result["rows"][0]["artifact"]
    for batch, target in TARGETS.items():
        row = next(
            r
            for r in result["rows"]
            if r["backend"] == "ort" and r["batch"] == batch and r["artifact"] == ours_name
        )
        summary[batch] = {
            "ort_p50_ms": row["p50_ms"],
            "speedup_vs_torch": row["speedup_vs_torch"],
            "target": target,
            "met": row["speedup_vs_torch"] >= target,
        }
        line = f"batch {batch}: edgekit on ONNX Runtime {row['speedup_vs_torch']:.2f}x PyTorch (p50 {row['p50_ms']:.1f} ms)"
        peer = next((r for r in result["rows"] if r["artifact"] != ours_name and r["batch"] == batch), None)
        if peer is not None:
            summary[batch].update(
                {
                    "optimum_speedup_vs_torch": peer["speedup_vs_torch"],
                    "edgekit_vs_optimum": peer["p50_ms"] / row["p50_ms"],
                }
            )
            line += f"; Optimum's graph {peer['speedup_vs_torch']:.2f}x PyTorch; edgekit/Optimum {summary[batch]['edgekit_vs_optimum']:.2f}x"
        print(line + f"; target >= {target}x: {'met' if summary[batch]['met'] else 'NOT met'}")
    print(
        json.dumps(
            {
                "benchmark": "encoder_ort_vs_torch",
                "cpu": cpu_info(),
                "model": MINILM.name,
                "threads": result["threads"],
                "summary": summary,
            }
        )
    )
    return summary


if __name__ == "__main__":
    main()
