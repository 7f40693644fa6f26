"""Benchmark: decode on this CPU, edgekit at every backend x precision against llama.cpp and
onnxruntime-genai, SmolLM2-135M-Instruct, batch 1, 128 greedy new tokens (EOS ignored).

    python -m edgekit.benchmarks.decode_peers [--rounds 3] [--new-tokens 128] [--out DIR]
        [--llama-python PY]    # a virtualenv with llama-cpp-python: the packaged Q4_1 GGUF, Q8_0, F16
        [--genai-python PY]    # a virtualenv with onnxruntime-genai: its model builder's fp32 and int4
        [--optimum-executorch-python PY]  # its XNNPACK .pte, fp32 / 8da8w / 8da4w, beside edgekit's

Every runtime runs in a process of its own (``decode_worker.py``, with the python of its own
virtualenv), all loaded before timing starts, then driven in turn for ``--rounds`` rounds with the
order rotated each round. Figures per runtime: decode tokens/s (median over rounds of
(new - 1) / (time of the last token - time of the first)), time to first token, peak RSS, and
"greedy = fp32": how many of the first ``--agree`` greedy tokens equal PyTorch fp32's before the
first difference. The same run measures this process's memory read rate, and so the decode bound
of fp32 and of 16-bit weights (every weight read once per token).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.artifacts import cache_dir, cpu_info

WORKER = Path(__file__).with_name("decode_worker.py")

# llama.cpp's own quantize API, run in its virtualenv: the packaged GGUF rewritten as another type.
_LLAMA_QUANTIZE = r"""
import sys, llama_cpp
src, dst, ftype = sys.argv[1], sys.argv[2], int(sys.argv[3])
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = ftype
params.allow_requantize = True
rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params)
sys.exit(rc)
"""
LLAMA_FTYPES = {"Q8_0": 7, "F16": 1}


@dataclass
class Contender:
    """One runtime at one precision: what runs it (a worker KIND), on which model, with which python."""

    name: str
    kind: str
    model: Path
    python: str = sys.executable
    bits: str = "fp32"
    proc: subprocess.Popen | None = None
    info: dict = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)
    error: str | None = None

    def start(self, threads: int) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen(
            [self.python, str(WORKER), self.kind, str(self.model), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.info = self._answer()["ready"]

    def ask(self, prompt: list[int], new_tokens: int) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"prompt": prompt, "new_tokens": new_tokens}) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def _answer(self) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise RuntimeError(f"{self.name} worker exited {self.proc.wait()}: {err.strip()[-1500:]}")
            if line.startswith("{"):  # a runtime may print its own lines first
                return json.loads(line)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _peer_file(name: str) -> Path:
    folder = cache_dir() / "peers"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name


def llama_models(python: str, gguf: Path) -> dict[str, Path]:
    """The packaged GGUF as it is, and rewritten by llama.cpp's quantize API as Q8_0 and F16 (cached)."""
    from edgekit.artifacts import sha256_file

    tag = sha256_file(gguf)[:12]
    models = {"Q4_1": gguf}
    for ftype, code in LLAMA_FTYPES.items():
        out = _peer_file(f"{gguf.stem}-{tag}-{ftype}.gguf")
        if not out.is_file():
            part = out.with_suffix(".part")
            done = subprocess.run([python, "-c", _LLAMA_QUANTIZE, str(gguf), str(part), str(code)], text=True)
            if done.returncode != 0:
                raise SystemExit(f"llama.cpp quantize to {ftype} failed ({python})")
            part.rename(out)
        models[ftype] = out
    return models


def genai_models(python: str, hf_folder: Path) -> dict[str, Path]:
    """onnxruntime-genai's model builder output for CPU, fp32 and int4 (cached by the folder's hash)."""
    import shutil

    from edgekit.artifacts import hash_folder

    tag = hash_folder(hf_folder)[:12]
    models = {}
    for precision in ("fp32", "int4"):
        out = _peer_file(f"genai-{hf_folder.name}-{tag}-{precision}")
        if not (out / "genai_config.json").is_file():
            part = out.with_name(out.name + ".part")
            shutil.rmtree(part, ignore_errors=True)
            cmd = [python, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_folder), "-o", str(part)]
            cmd += ["-p", precision, "-e", "cpu", "-c", str(part / "cache")]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(
                    f"onnxruntime-genai model builder {precision} failed:\n{done.stderr[-2000:]}"
                )
            shutil.rmtree(part / "cache", ignore_errors=True)
            part.rename(out)
        models[precision] = out
    return models


OPTIMUM_EXECUTORCH = {  # precision: optimum-cli export executorch options (its XNNPACK recipe)
    "fp32": [],
    "int8": ["--qlinear", "8da8w", "--qembedding", "8w"],
    "int4": ["--qlinear", "8da4w", "--qembedding", "8w"],
}
PTE_MAX_SEQ = 1024
"""The cache length of every ExecuTorch program timed here (edgekit's android default)."""


def optimum_executorch_models(
    python: str, hf_folder: Path, precisions=tuple(OPTIMUM_EXECUTORCH)
) -> dict[str, Path]:
    """optimum-executorch's .pte of the folder per precision, with its custom SDPA and KV-cache ops
    and the same cache length as edgekit's (cached by the folder's hash)."""
    import shutil

    from edgekit.artifacts import hash_folder

    tag = hash_folder(hf_folder)[:12]
    cli = Path(python).parent / "optimum-cli"
    models = {}
    for precision in precisions:
        options = OPTIMUM_EXECUTORCH[precision]
        out = _peer_file(f"optimum-executorch-{hf_folder.name}-{tag}-{precision}")
        if not (out / "model.pte").is_file():
            part = out.with_name(out.name + ".part")
            shutil.rmtree(part, ignore_errors=True)
            cmd = [str(cli), "export", "executorch", "--model", str(hf_folder), "--task", "text-generation"]
            cmd += ["--recipe", "xnnpack", "--use_custom_sdpa", "--use_custom_kv_cache"]
            cmd += ["--max_seq_len", str(PTE_MAX_SEQ), *options, "--output_dir", str(part)]
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"optimum-executorch export {precision} failed:\n{done.stderr[-2000:]}")
            part.rename(out)
        models[precision] = out / "model.pte"
    return models


def set_genai_threads(folder: Path, threads: int) -> None:
    """The builder's config leaves the thread count to ONNX Runtime; pin it like every other runtime."""
    from edgekit.artifacts import read_json, write_json

    config = read_json(folder / "genai_config.json", "rebuild it")
    options = config["model"]["decoder"].setdefault("session_options", {})
    options["intra_op_num_threads"] = threads
    options["inter_op_num_threads"] = 1
    write_json(folder / "genai_config.json", config)


EDGEKIT = (  # (name, cache key, target, precision, backend)
    ("edgekit ORT fp32", "ort", "ort", "fp32", "ort"),
    ("edgekit OpenVINO fp32", "openvino", "openvino", "fp32", "openvino"),
    ("edgekit OpenVINO fp16 weights", "openvino-fp16", "openvino", "fp16", "openvino"),
    ("edgekit OpenVINO bf16", "openvino-bf16", "openvino", "bf16", "openvino"),
    ("edgekit ORT int8 (weight-only)", "ort-int8", "ort", "int8", "ort"),
    ("edgekit OpenVINO int8 (weight-only)", "openvino-int8", "openvino", "int8", "openvino"),
    ("edgekit ORT int4", "ort-int4", "ort", "int4", "ort"),
    ("edgekit OpenVINO int4", "openvino-int4", "openvino", "int4", "openvino"),
    ("edgekit ORT gguf (the GGUF's own Q4_1 blocks)", "ort-gguf", "ort", "gguf", "ort"),
    ("edgekit ExecuTorch fp32 (android .pte)", "android", "android", "fp32", "executorch"),
    ("edgekit ExecuTorch int8 (android .pte, 8da8w)", "android-int8", "android", "int8", "executorch"),
    ("edgekit ExecuTorch int4 (android .pte, 8da4w)", "android-int4", "android", "int4", "executorch"),
    ("edgekit ORT Mobile int4 (android .ort)", "android-int4", "android", "int4", "ort"),
)
BITS = {"fp32": "fp32", "F16": "16-bit", "fp16": "16-bit", "bf16": "16-bit", "int8": "8-bit", "Q8_0": "8-bit"}
GGUF_PEER = "llama.cpp Q4_1"
"""The runtime whose tokens the GGUF import is compared with: llama.cpp on the same file."""


def contenders(args) -> list[Contender]:
    """PyTorch fp32 (the reference tokens), edgekit's artifacts, and the peers whose python was given."""
    from edgekit.assets import SMOLLM2
    from edgekit.export.cached import cached_export

    hf = SMOLLM2.hf_folder()
    out = [Contender("PyTorch fp32 (transformers)", "torch", hf)]
    only = [w.strip() for w in (args.only or "").split(",") if w.strip()]
    for name, key, target, precision, backend in EDGEKIT:
        if only and not any(w in name for w in only):
            continue  # not exported either: --only keeps a run to the runtimes asked for
        options = {"target": target} | ({"precision": precision} if precision != "fp32" else {})
        options |= {"max_seq": PTE_MAX_SEQ} if target == "android" else {}
        out.append(
            Contender(name, f"edgekit:{backend}", cached_export(SMOLLM2, key, **options), bits=precision)
        )
    if args.llama_python:
        for ftype, path in llama_models(args.llama_python, SMOLLM2.gguf_dir() / SMOLLM2.gguf_file).items():
            label = f"llama.cpp {ftype}" + (
                " (the packaged GGUF)" if path == SMOLLM2.gguf_dir() / SMOLLM2.gguf_file else ""
            )
            out.append(Contender(label, "llama.cpp", path, python=args.llama_python, bits=ftype))
    if args.genai_python:
        for precision, path in genai_models(args.genai_python, hf).items():
            set_genai_threads(path, args.threads)
            out.append(
                Contender(
                    f"onnxruntime-genai {precision}",
                    "ort-genai",
                    path,
                    python=args.genai_python,
                    bits=precision,
                )
            )
    if args.optimum_executorch_python:
        name = "optimum-executorch {} (.pte, custom SDPA + KV cache)".format
        asked = [p for p in OPTIMUM_EXECUTORCH if not only or any(w in name(p) for w in only)]
        for precision, path in optimum_executorch_models(args.optimum_executorch_python, hf, asked).items():
            out.append(
                Contender(name(precision), "pte", path, python=args.optimum_executorch_python, bits=precision)
            )
    return out


def time_all(
    runners: list[Contender], prompt: list[int], new_tokens: int, rounds: int, settle_s: float
) -> None:
    """Each runner once to warm up, then ``rounds`` full runs each, in turn, rotating who goes first."""
    live = [c for c in runners if c.error is None]
    for c in live:
        c.ask(prompt, 8)
    for r in range(rounds):
        for c in live[r % len(live) :] + live[: r % len(live)]:
            if c.error is not None:
                continue
            try:
                c.runs.append(c.ask(prompt, new_tokens))
            except RuntimeError as err:  # a runtime that dies is reported, the others go on
                c.error = str(err)
            time.sleep(settle_s)  # spinning runtime threads must not steal the next one's cores


def greedy_on_prompts(runners: list[Contender], prompts: list[list[int]], new_tokens: int) -> None:
    """Untimed: each runner's greedy tokens on the fixed prompts."""
    for c in runners:
        if c.error is None:
            try:
                c.info["greedy"] = [c.ask(p, new_tokens)["tokens"] for p in prompts]
            except RuntimeError as err:
                c.error = str(err)


def prefixes(c: Contender, ref: Contender | None, limit: int) -> list[int] | None:
    if ref is None or "greedy" not in c.info or "greedy" not in ref.info:
        return None
    return [matching_prefix(a, b, limit) for a, b in zip(c.info["greedy"], ref.info["greedy"])]


def matching_prefix(tokens: list[int], reference: list[int], limit: int) -> int:
    n = 0
    for a, b in zip(tokens[:limit], reference[:limit]):
        if a != b:
            break
        n += 1
    return n


def summarize(runners: list[Contender], reference: list[int], agree: int, bound: dict) -> list[dict]:
    import statistics

    rows = []
    llama = next((c for c in runners if c.name.startswith(GGUF_PEER)), None)
    for c in runners:
        row = {"runtime": c.name, "bits": BITS.get(c.bits, "4-bit"), "model": str(c.model)}
        if c.error or not c.runs:
            rows.append({**row, "error": c.error or "no run"})
            continue
        rates = [(len(r["times_s"]) - 1) / (r["times_s"][-1] - r["times_s"][0]) for r in c.runs]
        row.update(
            {
                "decode_tokens_per_s": statistics.median(rates),
                "ttft_ms": statistics.median(r["times_s"][0] for r in c.runs) * 1e3,
                "peak_rss_mb": max(r["peak_rss_mb"] for r in c.runs),
                "greedy_equal_fp32": matching_prefix(c.runs[0]["tokens"], reference, agree),
                "greedy_prompts_equal_fp32": prefixes(c, runners[0], agree),
                "greedy_prompts_equal_llama_q4_1": prefixes(c, llama, agree),
                "same_tokens_every_round": all(r["tokens"] == c.runs[0]["tokens"] for r in c.runs),
                "load_s": c.info.get("load_s"),
            }
        )
        per_byte = {"fp32": 1.0, "16-bit": 2.0}.get(row["bits"])
        if per_byte:
            row["of_bandwidth_bound"] = row["decode_tokens_per_s"] / (bound["tokens_per_s"] * per_byte)
        rows.append(row)
    return rows


def table(rows: list[dict], agree: int) -> str:
    lines = [
        f"| runtime, precision | decode tokens/s | TTFT ms | peak RSS MB | greedy = fp32 (of {agree}) "
        f"| on the 3 fixed prompts | = {GGUF_PEER} on them | of bandwidth bound |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['runtime']} | failed: {r['error'][:120]} | | | | | | |")
            continue
        share = f"{r['of_bandwidth_bound']:.0%}" if "of_bandwidth_bound" in r else ""
        fixed, llama = (
            ", ".join(map(str, r[k])) if r.get(k) else ""
            for k in ("greedy_prompts_equal_fp32", "greedy_prompts_equal_llama_q4_1")
        )
        lines.append(
            f"| {r['runtime']} | {r['decode_tokens_per_s']:.1f} | {r['ttft_ms']:.0f} | {r['peak_rss_mb']:.0f} "
            f"| {r['greedy_equal_fp32']} | {fixed} | {llama} | {share} |"
        )
    return "\n".join(lines)


def best_per_bits(rows: list[dict]) -> dict:
    """Per bit width: edgekit's fastest runtime against the fastest peer's, with both agreements."""
    out = {}
    for bits in sorted({r["bits"] for r in rows}):
        ok = [r for r in rows if r["bits"] == bits and "error" not in r]
        ours = [r for r in ok if r["runtime"].startswith("edgekit")]
        peers = [r for r in ok if not r["runtime"].startswith(("edgekit", "PyTorch"))]
        if ours and peers:
            a = max(ours, key=lambda r: r["decode_tokens_per_s"])
            b = max(peers, key=lambda r: r["decode_tokens_per_s"])
            out[bits] = {
                "edgekit": a["runtime"],
                "peer": b["runtime"],
                "edgekit_vs_peer": a["decode_tokens_per_s"] / b["decode_tokens_per_s"],
                "greedy_edgekit": a["greedy_equal_fp32"],
                "greedy_peer": b["greedy_equal_fp32"],
            }
    return out


def fixed_prompts() -> list[list[int]]:
    """Token ids of the 3 prompts decoder exports check greedy tokens on."""
    from transformers import AutoTokenizer

    from edgekit.assets import SMOLLM2
    from edgekit.calibration._sample import greedy_prompts

    tok = AutoTokenizer.from_pretrained(str(SMOLLM2.hf_folder()))
    return [tok(p)["input_ids"] for p in greedy_prompts()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--agree", type=int, default=48, help="greedy tokens compared with PyTorch fp32")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--llama-python", default=None, help="python of a virtualenv with llama-cpp-python")
    parser.add_argument("--genai-python", default=None, help="python of a virtualenv with onnxruntime-genai")
    parser.add_argument(
        "--optimum-executorch-python", default=None, help="python of a virtualenv with optimum-executorch"
    )
    parser.add_argument(
        "--only", default=None, help="comma-separated substrings: time only runtimes whose name has one"
    )
    parser.add_argument("--out", type=Path, default=None, help="write decode_peers.json and .md there")
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    from edgekit.assets import SMOLLM2
    from edgekit.benchmarks.decoder_tokens_per_s import bench_prompt, decode_bound
    from edgekit.models.source import weight_bytes

    runners = contenders(args)
    if args.only:
        wanted = [w.strip() for w in args.only.split(",")]
        runners = [c for c in runners if c.kind == "torch" or any(w in c.name for w in wanted)]
    prompt = bench_prompt(SMOLLM2.hf_folder())
    try:
        for c in runners:
            try:
                c.start(args.threads)
            except RuntimeError as err:
                c.error = str(err)
            print(f"loaded {c.name}: {c.error or c.info}", flush=True)
        time_all(runners, prompt, args.new_tokens, args.rounds, settle_s=0.3)
        greedy_on_prompts(runners, fixed_prompts(), args.agree)
    finally:
        for c in runners:
            c.stop()
    bound = decode_bound(weight_bytes(SMOLLM2.hf_folder()), args.threads)
    reference = runners[0].runs[0]["tokens"]
    rows = summarize(runners, reference, args.agree, bound)
    result = {
        "benchmark": "decode_peers",
        "cpu": cpu_info(),
        "model": SMOLLM2.name,
        "threads": args.threads,
        "prompt_tokens": len(prompt),
        "new_tokens": args.new_tokens,
        "rounds": args.rounds,
        "bandwidth_bound": bound,
        "rows": rows,
        "best_per_bits": best_per_bits(rows),
    }
    md = table(rows, args.agree)
    print(md)
    print(
        f"fp32 bound {bound['tokens_per_s']:.1f} tokens/s, 16-bit bound {2 * bound['tokens_per_s']:.1f} "
        f"({bound['weight_mb']:.0f} MB fp32 weights at {bound['read_gb_per_s']:.1f} GB/s); CPU {result['cpu']['model']}"
    )
    for bits, cmp in result["best_per_bits"].items():
        print(
            f"{bits}: {cmp['edgekit']} / {cmp['peer']} = {cmp['edgekit_vs_peer']:.2f}x (greedy {cmp['greedy_edgekit']} vs {cmp['greedy_peer']})"
        )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "decode_peers.json").write_text(json.dumps(result, indent=2))
        (args.out / "decode_peers.md").write_text(md + "\n")
    return result


if __name__ == "__main__":
    main()
