"""Benchmark: decode tokens/s of edgekit on ONNX Runtime and OpenVINO (f32) against PyTorch
``generate`` with its KV cache, on SmolLM2-135M-Instruct, batch 1, 128 new tokens after a
32-token prompt.

    python -m edgekit.benchmarks.decoder_tokens_per_s [--rounds 3] [--out DIR]
        [--optimum-python PY] [--optimum-intel-python PY]    # time the peers in the same run

The packaged GGUF is converted to an fp32 HF folder and exported to ONNX and OpenVINO once
(cached under ~/.cache/edgekit). edgekit's backends are timed by the bench harness (interleaved,
one process each); PyTorch ``generate`` runs in its own process before and after them and the
two figures are averaged, so slow drift of the machine affects both sides alike.
Targets (from the issue): ONNX Runtime >= 2x PyTorch, OpenVINO f32 >= 2.7x PyTorch; per-token
latency at context 512 within 1.5x of context 16. The same run measures how fast this process can
read memory with the same threads, and so the fp32 decode bound (weights read once per token)
each backend is held to.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from edgekit.artifacts import cpu_info

TARGETS = {"ort": 2.0, "openvino": 2.7}

_TORCH_GENERATE = r"""
import json, sys, time, torch
from transformers import AutoModelForCausalLM
torch.set_num_threads(int(sys.argv[2]))
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
prompt = torch.tensor([json.loads(sys.argv[3])])
new = int(sys.argv[4])
rates = []
with torch.inference_mode():
    model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=4, do_sample=False)
    for _ in range(int(sys.argv[5])):
        t0 = time.perf_counter()
        model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=1, min_new_tokens=1, do_sample=False)
        t1 = time.perf_counter()
        model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new, min_new_tokens=new, do_sample=False)
        t2 = time.perf_counter()
        prefill = t1 - t0
        rates.append((new - 1) / ((t2 - t1) - prefill))
print(json.dumps({"tokens_per_s": sorted(rates)[len(rates) // 2]}))
"""


# Runs in a peer tool's own virtualenv (older transformers): exports/loads SmolLM2 with the peer's
# class and times its generate exactly like _TORCH_GENERATE (prefill subtracted, median of runs).
_PEER_GENERATE = r"""
import json, sys, time
kind, model_dir, threads, prompt, new, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
import torch
torch.set_num_threads(threads)
if kind == "optimum-ort":
    from optimum.onnxruntime import ORTModelForCausalLM
    import onnxruntime as ort
    so = ort.SessionOptions(); so.intra_op_num_threads = threads
    model = ORTModelForCausalLM.from_pretrained(model_dir, export=True, use_cache=True, session_options=so)
elif kind in ("optimum-intel", "optimum-intel-int8"):
    from optimum.intel import OVModelForCausalLM
    model = OVModelForCausalLM.from_pretrained(model_dir, export=True, load_in_8bit=kind.endswith("int8"), ov_config={"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": str(threads), "CACHE_DIR": ""})
else:
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
ids = torch.tensor([prompt])
mask = torch.ones_like(ids)
rates = []
with torch.inference_mode():
    model.generate(ids, attention_mask=mask, max_new_tokens=4, do_sample=False)
    for _ in range(runs):
        t0 = time.perf_counter()
        model.generate(ids, attention_mask=mask, max_new_tokens=1, min_new_tokens=1, do_sample=False)
        t1 = time.perf_counter()
        model.generate(ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False)
        t2 = time.perf_counter()
        rates.append((new - 1) / ((t2 - t1) - (t1 - t0)))
import importlib.metadata as md
versions = {}
for p in ("transformers", "optimum", "optimum-intel", "optimum-onnx", "onnxruntime", "openvino"):
    try:
        versions[p] = md.version(p)
    except md.PackageNotFoundError:
        pass
print(json.dumps({"tokens_per_s": sorted(rates)[len(rates) // 2], "versions": versions}))
"""

PEERS = {
    "optimum-ort": ("Optimum ORTModelForCausalLM (ONNX Runtime)", "ort"),
    "optimum-intel": ("optimum-intel OVModelForCausalLM, f32 (OpenVINO)", "openvino"),
    "optimum-intel-int8": ("optimum-intel OVModelForCausalLM, int8 weights (OpenVINO)", "openvino-int8"),
    "pytorch-old": ("PyTorch generate under the peer's transformers", "torch"),
}


def peer_tokens_per_s(
    kind: str, python: str, model_dir: Path, prompt: list[int], new_tokens: int, threads: int, runs: int = 3
) -> dict:
    """Decode tokens/s of a peer tool, run by ``python`` (its own virtualenv)."""
    import tempfile

    with tempfile.TemporaryDirectory() as work:
        # run in a scratch folder: whatever the peer writes while exporting lands there and is removed
        done = subprocess.run(
            [
                python,
                "-c",
                _PEER_GENERATE,
                kind,
                str(model_dir),
                str(threads),
                json.dumps(prompt),
                str(new_tokens),
                str(runs),
            ],
            capture_output=True,
            text=True,
            cwd=work,
        )
    if done.returncode != 0:
        raise SystemExit(f"{kind} with {python} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def torch_generate_tokens_per_s(
    model_dir: Path, prompt: list[int], new_tokens: int, threads: int, runs: int = 3
) -> float:
    """Decode tokens/s of transformers' generate (cache on), prefill time subtracted."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            _TORCH_GENERATE,
            str(model_dir),
            str(threads),
            json.dumps(prompt),
            str(new_tokens),
            str(runs),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"PyTorch generate failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])["tokens_per_s"]


def bench_prompt(tokenizer_dir: Path) -> list[int]:
    """The 32-token prompt every decode benchmark and peer is timed on."""
    from transformers import AutoTokenizer

    from edgekit.benchmarks.generation import prompt_ids
    from edgekit.calibration.text import sample_texts

    return prompt_ids(AutoTokenizer.from_pretrained(str(tokenizer_dir)), sample_texts(min_words=64), 32)


def time_peer(
    kind: str, python: str, prompt: list[int], summary: dict, hf: float, new_tokens: int, threads: int
) -> dict:
    """A peer's decode tokens/s, its ratio to PyTorch ``generate`` (``hf``) and edgekit's
    matching row of ``summary`` over it; printed and returned."""
    from edgekit.assets import SMOLLM2

    peer = peer_tokens_per_s(kind, python, SMOLLM2.hf_folder(), prompt, new_tokens, threads)
    what, ours = PEERS[kind]
    mine = summary.get(ours, {}).get("tokens_per_s")
    peer.update(
        {
            "what": what,
            "vs_pytorch_generate": peer["tokens_per_s"] / hf,
            "edgekit_vs_peer": (mine / peer["tokens_per_s"]) if mine else None,
        }
    )
    print(
        f"{what}: {peer['tokens_per_s']:.1f} tokens/s = {peer['vs_pytorch_generate']:.2f}x PyTorch generate; edgekit {ours} / peer = {peer['edgekit_vs_peer']:.2f}"
        + f"  {peer['versions']}"
    )
    return peer


def bench_against_generate(
    artifacts: tuple[Path, ...],
    backends: tuple[str, ...],
    contexts: tuple[int, ...],
    rounds: int,
    new_tokens: int,
    threads: int,
    out: Path | None,
):
    """The bench harness over ``artifacts`` (generation mode), with PyTorch ``generate`` timed
    before and after it; returns the bench result and the averaged PyTorch tokens/s."""
    from edgekit.assets import SMOLLM2
    from edgekit.benchmarks.harness import BenchConfig, bench
    from edgekit.benchmarks.report import print_table

    prompt = bench_prompt(artifacts[0])
    before = torch_generate_tokens_per_s(SMOLLM2.hf_folder(), prompt, new_tokens, threads)
    cfg = BenchConfig(
        artifacts=artifacts,
        backends=backends,
        new_tokens=new_tokens,
        prompt_len=32,
        contexts=contexts,
        rounds=rounds,
        threads=threads,
        out=out,
        overwrite=True,
    )
    result = bench(cfg)
    after = torch_generate_tokens_per_s(SMOLLM2.hf_folder(), prompt, new_tokens, threads)
    print_table(result)
    hf = (before + after) / 2
    print(f"PyTorch generate fp32 (cache on): {hf:.1f} tokens/s (before {before:.1f}, after {after:.1f})")
    return result, {"pytorch_generate_tokens_per_s": hf, "pytorch_generate_before_after": [before, after]}


_READ_BANDWIDTH = r"""
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[1]))
w = torch.ones(int(sys.argv[2]) // 4 // 1024, 1024)
v = torch.ones(1024)
rates = {}
for name, read in (("sum", lambda: w.sum()), ("matrix-vector", lambda: w @ v)):
    read()
    times = []
    for _ in range(15):
        t0 = time.perf_counter(); read(); times.append(time.perf_counter() - t0)
    rates[name] = w.numel() * 4 / sorted(times)[len(times) // 2] / 1e9
best = max(rates, key=rates.get)
print(json.dumps({"gb_per_s": rates[best], "method": best, "rates": rates}))
"""


def decode_bound(weight_bytes: int, threads: int) -> dict:
    """The memory-bandwidth bound on fp32 decoding: every step reads all weights once, so tokens/s
    cannot beat (bytes/s this process can read with ``threads`` threads) / weight bytes. The read
    rate is measured here, not quoted: the faster of a sum and a matrix-vector product (what a
    decode step is) over a buffer as large as the weights."""
    done = subprocess.run(
        [sys.executable, "-c", _READ_BANDWIDTH, str(threads), str(weight_bytes)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"bandwidth probe failed:\n{done.stderr[-2000:]}")
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    gbs = probe["gb_per_s"]
    return {
        "read_gb_per_s": gbs,
        "read_method": probe["method"],
        "read_rates": probe["rates"],
        "weight_mb": weight_bytes / 1e6,
        "tokens_per_s": gbs * 1e9 / weight_bytes,
    }


def _bound(model, threads: int, summary: dict, hf: float) -> dict:
    """This machine's fp32 decode bound (weights read per token at the measured bandwidth), and each backend's share of it; printed too."""
    from edgekit.models.source import weight_bytes

    bound = decode_bound(weight_bytes(model.hf_folder()), threads)
    print(
        f"fp32 decode bound: {bound['weight_mb']:.0f} MB of weights per token at {bound['read_gb_per_s']:.1f} GB/s read with {threads} threads = {bound['tokens_per_s']:.1f} tokens/s"
        f" ({bound['read_method']}) = {bound['tokens_per_s'] / hf:.2f}x PyTorch generate; "
        + ", ".join(
            f"{b} at {summary[b]['tokens_per_s'] / bound['tokens_per_s']:.0%} of it"
            for b in TARGETS
            if b in summary
        )
        + "; the targets need "
        + ", ".join(f"{b} {t * hf / bound['tokens_per_s']:.0%} of it" for b, t in TARGETS.items())
    )
    return bound


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--optimum-python",
        default=None,
        help="python of a virtualenv with optimum[onnxruntime]: times ORTModelForCausalLM (and PyTorch under its transformers) in the same run",
    )
    parser.add_argument(
        "--optimum-intel-python",
        default=None,
        help="python of a virtualenv with optimum-intel[openvino]: times OVModelForCausalLM at f32 in the same run",
    )
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)

    import os

    from edgekit.assets import SMOLLM2
    from edgekit.export.cached import cached_export

    threads = args.threads or os.cpu_count() or 1
    artifacts = (
        cached_export(SMOLLM2, "ort", target="ort"),
        cached_export(SMOLLM2, "openvino", target="openvino"),
    )
    result, summary = bench_against_generate(
        artifacts,
        ("torch", "ort", "openvino"),
        (16, 128, 512),
        args.rounds,
        args.new_tokens,
        threads,
        args.out,
    )
    hf = summary["pytorch_generate_tokens_per_s"]
    for row in result["rows"]:
        ratio = row["tokens_per_s"] / hf
        growth = row["per_token_growth"]
        entry = {
            "tokens_per_s": row["tokens_per_s"],
            "vs_pytorch_generate": ratio,
            "ttft_ms": row["ttft_ms"],
            "per_token_512_vs_16": growth,
        }
        target = TARGETS.get(row["backend"])
        if target:
            entry.update({"target": target, "met": ratio >= target})
        summary[row["backend"]] = entry
        print(
            f"{row['backend']:>8}: {row['tokens_per_s']:.1f} tokens/s = {ratio:.2f}x PyTorch generate"
            + (f" (target {target}x: {'met' if ratio >= target else 'NOT met'})" if target else "")
            + f"; token latency @512 / @16 = {growth:.2f} (target <= 1.5)"
        )
    summary["bandwidth_bound"] = _bound(SMOLLM2, threads, summary, hf)
    peers = [(k, args.optimum_python) for k in ("optimum-ort", "pytorch-old") if args.optimum_python] + (
        [("optimum-intel", args.optimum_intel_python)] if args.optimum_intel_python else []
    )
    if peers:
        prompt = bench_prompt(artifacts[0])
        summary["peers"] = {
            kind: time_peer(kind, python, prompt, summary, hf, args.new_tokens, threads)
            for kind, python in peers
        }
        if "pytorch-old" in summary["peers"]:
            old = summary["peers"]["pytorch-old"]["tokens_per_s"]
            for backend in ("ort", "openvino"):
                if backend in summary:
                    summary[backend]["vs_pytorch_generate_peer_transformers"] = (
                        summary[backend]["tokens_per_s"] / old
                    )
                    print(
                        f"{backend:>8}: {summary[backend]['tokens_per_s'] / old:.2f}x PyTorch generate under the peer's transformers ({old:.1f} tokens/s), the baseline the issue's targets were set against"
                    )
    print(
        json.dumps(
            {
                "benchmark": "decoder_tokens_per_s",
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
