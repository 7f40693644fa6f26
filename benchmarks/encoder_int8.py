"""Benchmark: INT8 all-MiniLM-L6-v2 on ONNX Runtime and OpenVINO against PyTorch fp32, in one run.

    python -m edgekit.benchmarks.encoder_int8 [--repeat 60] [--eval-every 2] [--out DIR]
        [--optimum-python PY] [--optimum-intel-python PY]    # add the peers' INT8 to the same run

Rows: PyTorch fp32 (the reference), ONNX Runtime fp32 and INT8 (static, calibrated, edgekit's
defaults), OpenVINO fp32 and INT8 (NNCF with the same calibration set); batch 1 and 8 at
sequence 128, timed in interleaved blocks. Calibration: the 300 Lee background news texts.
Quality on BBC News documents the calibration never saw (every ``--eval-every``-th of 2225):
mean cosine of the sentence embeddings to PyTorch's, and 5-fold logistic-regression accuracy
relative to PyTorch fp32's.

Targets (batch 8, no flags): OpenVINO INT8 >= 3.9x PyTorch with mean cosine >= 0.998; ONNX
Runtime INT8 >= 2.8x with mean cosine >= 0.99; both >= 99% of the fp32 BBC accuracy.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from edgekit.artifacts import cpu_info

TARGETS = {"ort": {"speedup": 2.8, "cosine": 0.99}, "openvino": {"speedup": 3.9, "cosine": 0.998}}
MIN_RELATIVE_ACCURACY = 0.99


def bbc_eval_file(every: int, folder: Path) -> Path:
    """Every ``every``-th BBC document as a .jsonl with text and label."""
    from edgekit.assets import bbc_news

    files = sorted(bbc_news().glob("*/*.txt"))[::every]
    out = folder / "bbc_eval.jsonl"
    out.write_text(
        "\n".join(
            json.dumps({"text": " ".join(f.read_text(encoding="latin-1").split()), "label": f.parent.name})
            for f in files
        )
    )
    return out


def _entry(
    result: dict, backend: str, batch: int, target: dict, row: dict, quality: dict, peer: Path | None
) -> dict:
    """One INT8 row against its target, and the same-run peer where there is one; printed too."""
    entry = {
        "speedup_vs_torch": row["speedup_vs_torch"],
        "p50_ms": row["p50_ms"],
        "mean_cosine": quality["mean_cosine"],
        "accuracy": quality.get("accuracy"),
        "relative_accuracy": quality.get("relative_accuracy"),
    }
    if batch == 8:
        entry["met"] = (
            entry["speedup_vs_torch"] >= target["speedup"]
            and entry["mean_cosine"] >= target["cosine"]
            and (entry["relative_accuracy"] or 0) >= MIN_RELATIVE_ACCURACY
        )
        print(
            f"{backend} INT8, batch 8: {entry['speedup_vs_torch']:.2f}x PyTorch fp32 (target {target['speedup']}x), mean cosine {entry['mean_cosine']:.4f} "
            f"(target {target['cosine']}), BBC accuracy {entry['accuracy']:.4f} = {entry['relative_accuracy']:.4f} of fp32 (target {MIN_RELATIVE_ACCURACY}): "
            f"{'met' if entry['met'] else 'NOT met'}"
        )
    if peer is not None:
        peer_row = next(r for r in result["rows"] if r["artifact"] == peer.name and r["batch"] == batch)
        peer_quality = next(q for q in result["quality"] if q["artifact"] == peer.name)
        entry["peer"] = {
            "tool": json.loads((peer / "manifest.json").read_text())["tool"],
            "speedup_vs_torch": peer_row["speedup_vs_torch"],
            "mean_cosine": peer_quality["mean_cosine"],
            "relative_accuracy": peer_quality.get("relative_accuracy"),
            "edgekit_vs_peer": peer_row["p50_ms"] / row["p50_ms"],
        }
        print(
            f"  {entry['peer']['tool']}, batch {batch}: {peer_row['speedup_vs_torch']:.2f}x PyTorch fp32, mean cosine {peer_quality['mean_cosine']:.4f}, "
            f"BBC {peer_quality.get('relative_accuracy') or 0:.4f} of fp32; edgekit / peer speed = {entry['peer']['edgekit_vs_peer']:.2f}x"
        )
    return entry


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=60)
    parser.add_argument(
        "--eval-every", type=int, default=2, help="use every n-th BBC document for quality (1 = all 2225)"
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="write bench.json/bench.md/bench.png here")
    parser.add_argument(
        "--optimum-python",
        default=None,
        help="python of a virtualenv with optimum[onnxruntime]: adds Optimum's dynamic INT8 (ORTQuantizer, AVX-512 VNNI) to the run",
    )
    parser.add_argument(
        "--optimum-intel-python",
        default=None,
        help="python of a virtualenv with optimum-intel[openvino]: adds optimum-intel's static INT8 (OVQuantizer, same calibration texts) to the run",
    )
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)

    from edgekit.assets import MINILM, lee_background
    from edgekit.benchmarks.harness import BenchConfig, bench
    from edgekit.benchmarks.report import print_table
    from edgekit.export.cached import cached_export

    calib = lee_background()
    fp32 = cached_export(MINILM, "onnx")
    ov32 = cached_export(MINILM, "openvino", target="openvino")
    ort8 = cached_export(MINILM, "ort-int8-lee", target="ort", precision="int8", calib=calib)
    ov8 = cached_export(MINILM, "openvino-int8-lee", target="openvino", precision="int8", calib=calib)
    workdir = Path(tempfile.mkdtemp(prefix="edgekit-bench-"))
    peers = {}
    if args.optimum_python:
        from edgekit.benchmarks.peers import optimum_encoder

        peers["ort"] = optimum_encoder(
            args.optimum_python, MINILM.path(), workdir / "optimum-dynamic-int8", mode="dynamic-int8"
        )
    if args.optimum_intel_python:
        from edgekit.benchmarks.peers import optimum_intel_int8_encoder

        peers["openvino"] = optimum_intel_int8_encoder(
            args.optimum_intel_python, MINILM.path(), workdir / "optimum-intel-int8", calib, 128
        )
    cfg = BenchConfig(
        artifacts=(fp32, ov32, ort8, ov8, *peers.values()),
        backends=("torch", "ort", "openvino"),
        batches=(1, 8),
        seq_lens=(128,),
        warmup=5,
        repeat=args.repeat,
        threads=args.threads,
        out=args.out,
        overwrite=True,
        eval_data=bbc_eval_file(args.eval_every, workdir),
    )
    result = bench(cfg)
    print_table(result)
    by_name = {
        Path(p).name: kind for p, kind in ((fp32, "fp32"), (ov32, "fp32"), (ort8, "int8"), (ov8, "int8"))
    }
    summary = {}
    for backend, target in TARGETS.items():
        for batch in (1, 8):
            row = next(
                r
                for r in result["rows"]
                if r["backend"] == backend and r["batch"] == batch and by_name.get(r["artifact"]) == "int8"
            )
            quality = next(
                q
                for q in result["quality"]
                if q["backend"] == backend and by_name.get(q["artifact"]) == "int8"
            )
            summary[f"{backend}_b{batch}"] = _entry(
                result, backend, batch, target, row, quality, peers.get(backend)
            )
    torch_acc = next((q.get("accuracy") for q in result["quality"] if q["backend"] == "torch"), None)
    print(
        json.dumps(
            {
                "benchmark": "encoder_int8",
                "cpu": cpu_info(),
                "model": MINILM.name,
                "threads": result["threads"],
                "torch_fp32_bbc_accuracy": torch_acc,
                "summary": summary,
            }
        )
    )
    return summary


if __name__ == "__main__":
    main()
