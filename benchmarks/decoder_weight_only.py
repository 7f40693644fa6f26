"""Benchmark: weight-only INT8 / INT4 SmolLM2-135M-Instruct on ONNX Runtime and OpenVINO against
PyTorch fp32 ``generate``, decode tokens/s at batch 1 (128 new tokens after a 32-token prompt).

    python -m edgekit.benchmarks.decoder_weight_only [--rounds 3] [--new-tokens 128] [--out DIR]
        [--optimum-intel-python PY]    # time optimum-intel's int8-weight model in the same run

Artifacts (exported once, cached under ~/.cache/edgekit): ONNX fp32, ORT weight-only int8 and
int4, OpenVINO fp32, int8 and int4. PyTorch ``generate`` runs before and after the interleaved
bench and the two figures are averaged (see ``decoder_tokens_per_s``). Greedy tokens against
transformers fp32 on a fixed set of 3 prompts (32 tokens each) come from each artifact's manifest.
Targets (issue 5): OpenVINO INT8 >= 4.5x PyTorch, ONNX Runtime INT8 >= 3x.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from edgekit.artifacts import cpu_info

TARGETS = {("ort", "int8"): 3.0, ("openvino", "int8"): 4.5}


def _entry(result: dict, backend: str, precision: str, path: Path, hf: float) -> dict:
    """One artifact's figures against PyTorch generate, with its greedy agreement; printed too."""
    from edgekit.artifacts import read_manifest

    row = next(r for r in result["rows"] if r["artifact"] == path.name and r["backend"] == backend)
    greedy = read_manifest(path)["validation"].get("greedy_generation", {})
    ratio = row["tokens_per_s"] / hf
    target = TARGETS.get((backend, precision))
    entry = {
        "tokens_per_s": row["tokens_per_s"],
        "vs_pytorch_generate": ratio,
        "model_mb": row.get("model_mb"),
        "peak_rss_mb": row.get("peak_rss_mb"),
        "greedy_identical_prompts": greedy.get("identical_prompts"),
        "greedy_prompts": greedy.get("prompts"),
        "greedy_matching_prefix": greedy.get("matching_prefix"),
        "greedy_tokens": greedy.get("new_tokens"),
    }
    if target:
        entry.update({"target": target, "met": ratio >= target})
    parity = f"greedy = fp32 on {greedy.get('identical_prompts')}/{greedy.get('prompts')} prompts" + (
        f" (matching prefixes {greedy['matching_prefix']} of {greedy['new_tokens']})"
        if greedy.get("matching_prefix")
        else ""
    )
    print(
        f"{backend:>8} {precision}: {row['tokens_per_s']:.1f} tokens/s = {ratio:.2f}x PyTorch"
        + (f" (target {target}x: {'met' if ratio >= target else 'NOT met'})" if target else "")
        + f"; {parity}"
    )
    return entry


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--optimum-intel-python",
        default=None,
        help="python of a virtualenv with optimum-intel[openvino]: times its int8-weight OVModelForCausalLM in the same run",
    )
    args = parser.parse_args(argv)

    from edgekit.assets import SMOLLM2
    from edgekit.benchmarks.decoder_tokens_per_s import bench_against_generate
    from edgekit.export.cached import cached_export

    threads = args.threads or os.cpu_count() or 1
    artifacts = {
        ("ort", "fp32"): cached_export(SMOLLM2, "ort", target="ort"),
        ("ort", "int8"): cached_export(SMOLLM2, "ort-int8", target="ort", precision="int8"),
        ("ort", "int4"): cached_export(SMOLLM2, "ort-int4", target="ort", precision="int4"),
        ("openvino", "fp32"): cached_export(SMOLLM2, "openvino", target="openvino"),
        ("openvino", "int8"): cached_export(SMOLLM2, "openvino-int8", target="openvino", precision="int8"),
        ("openvino", "int4"): cached_export(SMOLLM2, "openvino-int4", target="openvino", precision="int4"),
    }
    result, summary = bench_against_generate(
        tuple(artifacts.values()),
        ("ort", "openvino"),
        (16, 512),
        args.rounds,
        args.new_tokens,
        threads,
        args.out,
    )
    hf = summary["pytorch_generate_tokens_per_s"]
    for (backend, precision), path in artifacts.items():
        summary[f"{backend}-{precision}"] = _entry(result, backend, precision, path, hf)
    if args.optimum_intel_python:
        from edgekit.benchmarks.decoder_tokens_per_s import bench_prompt, time_peer

        prompt = bench_prompt(artifacts[("ort", "fp32")])
        summary["peers"] = {
            "optimum-intel-int8": time_peer(
                "optimum-intel-int8", args.optimum_intel_python, prompt, summary, hf, args.new_tokens, threads
            )
        }
    print(
        json.dumps(
            {
                "benchmark": "decoder_weight_only",
                "cpu": cpu_info(),
                "model": SMOLLM2.name,
                "threads": threads,
                "summary": summary,
            }
        )
    )
    return summary


if __name__ == "__main__":
    main()
