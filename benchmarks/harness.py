"""``edgekit bench``: latency, throughput, memory, size and agreement with the reference, per
artifact x backend x batch x sequence length, in one run.

    parent ──spawn──> worker(artifact A, torch) ─┐   each case: inputs + warmup to every worker,
           ──spawn──> worker(artifact A, ort)   ─┤   then `rounds` blocks of timed runs, taken in
           ──spawn──> worker(artifact B, ort)   ─┘   turn (interleaved) so machine drift is shared
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import check_out_dir, cpu_info, environment, now_iso, read_manifest, staged_output, to_jsonable, write_json
from edgekit.benchmarks.generation import GENERATING, PER_CONTEXT_STEPS
from edgekit.errors import EdgekitError, InputError, MissingExtraError

log = logging.getLogger("edgekit.bench")

DEFAULT_CONTEXTS = (16, 128, 512)


@dataclass(frozen=True)
class BenchConfig:
    artifacts: tuple[Path, ...]
    backends: tuple[str, ...] = ("torch", "ort")
    batches: tuple[int, ...] = (1,)
    seq_lens: tuple[int, ...] = (128,)
    warmup: int = 5
    repeat: int = 30
    """Timed runs per (artifact, backend, case), split into ``rounds`` interleaved blocks."""
    rounds: int | None = None
    """Interleaved blocks per case; None = blocks of about 3 runs (fine interleaving evens out drift)."""
    threads: int | None = None
    """Intra-op threads for every backend; None = all cores (os.cpu_count())."""
    text: Path | None = None
    """Text file / jsonl / folder for the inputs; None uses edgekit's built-in sample."""
    out: Path | None = None
    overwrite: bool = False
    settle_s: float = 0.1
    new_tokens: int = 128
    """Decoders: greedy tokens per generation run (EOS ignored)."""
    prompt_len: int = 32
    """Decoders: prompt length for time-to-first-token and tokens/s."""
    contexts: tuple[int, ...] | None = None
    """Decoders and encoder-decoders: context lengths at which per-token latency (cached and
    recomputed) is measured; None = DEFAULT_CONTEXTS, less those the artifacts' positions cannot hold."""
    eval_data: Path | None = None
    """Encoders: held-out texts for quality against the fp32 PyTorch reference (embedding cosine;
    with labels, 5-fold logistic-regression accuracy and its ratio to the reference's)."""


@dataclass
class _Worker:
    artifact: Path
    name: str
    backend: str
    process: Any
    conn: Any
    source: str = ""
    """sha256 of the source model: artifacts of one source share one PyTorch reference."""
    info: dict[str, Any] = field(default_factory=dict)

    def ask(self, command: str, arg: Any = None, verbose: bool = False):
        self.conn.send((command, arg))
        return self.expect(verbose, "failed")

    def expect(self, verbose: bool, what: str):
        """The next reply's payload; a worker's error report becomes an EdgekitError naming ``what`` went wrong."""
        kind, payload = self.receive()
        if kind == "error":
            if verbose:
                log.error("worker traceback:\n%s", payload["traceback"])
            message = payload["message"] if payload["user_error"] else f"{payload['type']}: {payload['message']}".splitlines()[0]
            raise EdgekitError(f"backend '{self.backend}' on '{self.name}' {what}: {message}", "rerun with --verbose for the traceback")
        return payload

    def receive(self):
        """The worker's next message; a worker that died (crash, out of memory) is an error, not a hang."""
        while not self.conn.poll(1.0):
            if not self.process.is_alive():
                raise EdgekitError(
                    f"the '{self.backend}' worker for '{self.name}' exited unexpectedly (exit code {self.process.exitcode})",
                    "rerun with --verbose; if it was killed for memory, bench fewer artifacts at once",
                )
        return self.conn.recv()


def percentiles(latencies_s: list[float]) -> dict[str, float]:
    ms = np.asarray(latencies_s) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "std_ms": float(ms.std()),
        "min_ms": float(ms.min()),
    }


def agreement(reference: dict[str, np.ndarray], outputs: dict[str, np.ndarray], mask: np.ndarray | None) -> dict[str, float]:
    """Max |diff| per output, and the mean cosine similarity of the main output per example
    (the pooled embedding where there is one, else token states under the attention mask)."""
    result: dict[str, float] = {}
    for name, ref in reference.items():
        if name in outputs and outputs[name].shape == ref.shape:
            result[f"max_abs_diff.{name}"] = float(np.max(np.abs(outputs[name].astype(np.float64) - ref)))
    common = [name for name in reference if name in outputs and outputs[name].shape == reference[name].shape]
    if not common:
        return result
    key = "sentence_embedding" if "sentence_embedding" in common else common[0]
    ref, got = reference[key].astype(np.float64), outputs[key].astype(np.float64)
    if ref.ndim == 3 and mask is not None:
        keep = mask.astype(bool)
        ref, got = ref[keep], got[keep]
    ref, got = ref.reshape(ref.shape[0], -1), got.reshape(got.shape[0], -1)
    cos = np.sum(ref * got, axis=1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1) + 1e-12)
    result[f"cosine.{key}"] = float(cos.mean())
    return result


def _tokens_after_context(task: str, cfg: BenchConfig) -> int:
    """Positions a context run takes beyond the context: a decoder's whole generation, an
    encoder-decoder's timed steps after its context."""

    return cfg.new_tokens if task == "text-generation" else PER_CONTEXT_STEPS + 1


def _decoder_room(manifest: dict, cfg: BenchConfig) -> int | None:
    """The longest context a generating artifact can be timed at: its positions less the tokens
    generated after the context (None: no limit known)."""
    limit = manifest.get("export", {}).get("max_length")
    if not limit:
        return None
    return int(limit) - _tokens_after_context(manifest["export"].get("task"), cfg)


def _resolve_contexts(cfg: BenchConfig, manifests: list[dict]) -> BenchConfig:
    """Default contexts: DEFAULT_CONTEXTS that every generating artifact can hold (at least the shortest)."""
    import dataclasses

    if cfg.contexts is not None:
        return cfg
    rooms = [r for r in (_decoder_room(m, cfg) for m in manifests if m.get("export", {}).get("task") in GENERATING) if r is not None]
    fitting = tuple(c for c in DEFAULT_CONTEXTS if all(c <= r for r in rooms)) or DEFAULT_CONTEXTS[:1]
    if fitting != DEFAULT_CONTEXTS:
        log.info("contexts %s: the artifacts hold at most %d positions for them", list(fitting), min(rooms))
    return dataclasses.replace(cfg, contexts=fitting)


def _check(cfg: BenchConfig) -> tuple[list[tuple[Path, dict]], BenchConfig]:
    """The artifacts' folders and manifests, and the config with its defaults resolved; bad input raises."""
    from edgekit.runtimes.registry import get_backend_entry

    if not cfg.artifacts:
        raise InputError("no artifact folder given", "pass one or more folders written by 'edgekit export'")
    for backend in cfg.backends:
        entry = get_backend_entry(backend)
        if entry.missing():
            raise MissingExtraError(f"the '{backend}' backend", entry.missing()[0], entry.extra)
    if len(set(cfg.backends)) != len(cfg.backends):
        raise InputError(f"backend listed twice in {list(cfg.backends)}", "list each backend once")
    for label, values in (("--batch", cfg.batches), ("--seq-len", cfg.seq_lens)):
        if not values or any(v < 1 for v in values):
            raise InputError(f"{label} needs positive integers, got {list(values)}", f"pass e.g. {label} 1,8")
    if cfg.repeat < 1 or cfg.warmup < 0 or (cfg.rounds is not None and cfg.rounds < 1):
        raise InputError(f"--repeat must be >= 1 and --warmup >= 0 (got {cfg.repeat}, {cfg.warmup})", "pass e.g. --warmup 5 --repeat 30")
    if cfg.threads is not None and cfg.threads < 1:
        raise InputError(f"--threads must be >= 1, got {cfg.threads}", "omit it to use every core")
    manifests = [read_manifest(Path(artifact)) for artifact in cfg.artifacts]
    cfg = _resolve_contexts(cfg, manifests)
    loaded = []
    for artifact, manifest in zip(cfg.artifacts, manifests):
        export = manifest.get("export", {})
        limit = export.get("max_length")
        task = export.get("task")
        generation = task in GENERATING
        if generation and cfg.batches != (1,):
            raise InputError(f"generation is benchmarked at batch 1, got --batch {','.join(map(str, cfg.batches))}", "drop --batch for decoder artifacts")
        if generation and (cfg.new_tokens < 2 or cfg.prompt_len < 1):
            raise InputError(f"--new-tokens must be >= 2 (got {cfg.new_tokens})", "pass e.g. --new-tokens 128")
        if task == "seq2seq":
            # decoder positions: the start token + the new tokens, and each context + its timed steps
            source_limit = export.get("max_source_length")
            if export["seq2seq"]["encoder_input"] == "input_ids" and source_limit and max(cfg.seq_lens) > source_limit:
                raise InputError(f"--seq-len {max(cfg.seq_lens)} is longer than the encoder of '{artifact}' reads ({source_limit} tokens)", f"keep it within {source_limit}")
            after = _tokens_after_context(task, cfg)
            too_long = [n for n in (1 + cfg.new_tokens, *[c + after for c in cfg.contexts]) if limit and n > limit]
            option = "--new-tokens or --contexts"
        else:
            lengths = (*cfg.contexts, cfg.prompt_len) if generation else cfg.seq_lens
            grows_by = cfg.new_tokens if generation else 0
            too_long = [n + grows_by for n in lengths if limit and n + grows_by > limit]
            option = "--contexts/--prompt-len plus --new-tokens" if generation else "--seq-len"
        if too_long:
            raise InputError(f"{option} reach {too_long[0]} tokens, longer than '{artifact}' allows ({limit} tokens)", f"keep them within {limit}")
        if not any(get_backend_entry(b).reads(manifest) for b in cfg.backends):
            fmt = manifest.get("export", {}).get("format", "onnx")
            raise InputError(f"none of the backends {list(cfg.backends)} runs '{artifact}' ({fmt})", "add a backend that reads it, e.g. --backend openvino for an OpenVINO IR")
        loaded.append((Path(artifact).resolve(), manifest))
    if cfg.eval_data is not None and not Path(cfg.eval_data).expanduser().exists():
        raise InputError(f"--eval-data '{cfg.eval_data}' does not exist", "pass a .txt/.jsonl file or a folder of .txt files (class subfolders give labels)")
    if cfg.out is not None:
        check_out_dir(cfg.out, cfg.overwrite)
    return loaded, cfg


def _quality(cfg: BenchConfig, workers: list[_Worker], tokenizers: dict, input_names: dict, manifests: dict, progress: Any, task: Any, verbose: bool) -> list[dict[str, Any]]:
    """Embeddings of every worker on the eval texts, compared with the PyTorch worker of the same source."""
    from edgekit.calibration.text import load_labeled, tokenize_natural
    from edgekit.export.int8 import probe_accuracy

    texts, labels = load_labeled(cfg.eval_data)
    max_length = max(cfg.seq_lens)
    if progress:
        progress.update(task, description=f"bench: quality on {len(texts)} texts")
    pooled: dict[int, np.ndarray] = {}
    for w in workers:
        feeds = [tokenize_natural(tokenizers[w.artifact], texts[i : i + 16], input_names[w.artifact], max_length=max_length) for i in range(0, len(texts), 16)]
        output = "sentence_embedding" if any(o.get("name") == "sentence_embedding" for o in manifests[w.artifact]["export"].get("outputs", [])) else "last_hidden_state"
        outs = w.ask("embed", {"feeds": feeds, "output": output}, verbose)
        rows = []
        for feed, out in zip(feeds, outs):
            if out.ndim == 3:
                mask = feed["attention_mask"][..., None].astype(np.float32)
                out = (out * mask).sum(1) / np.maximum(mask.sum(1), 1)
            rows.append(out)
        pooled[id(w)] = np.concatenate(rows).astype(np.float64)
    accuracy = {id(w): probe_accuracy(pooled[id(w)], labels, 0) for w in workers} if labels is not None else {}
    result = []
    for w in workers:
        ref = next((x for x in workers if x.source == w.source and x.backend == "torch"), None)
        row: dict[str, Any] = {"artifact": w.name, "backend": w.backend, "texts": len(texts)}
        if ref is not None:
            a, b = pooled[id(w)], pooled[id(ref)]
            row["mean_cosine"] = float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)).mean())
        if accuracy:
            row["accuracy"] = accuracy[id(w)]
            row["relative_accuracy"] = accuracy[id(w)] / accuracy[id(ref)] if ref is not None else None
        result.append(row)
    return result


def _kind(loaded: list[tuple[Path, dict]]) -> str:
    """What every artifact of the run is: 'text-generation', 'seq2seq' or 'encoder' (one kind per run)."""
    kinds = {m.get("export", {}).get("task") if m.get("export", {}).get("task") in GENERATING else "encoder" for _, m in loaded}
    if len(kinds) > 1:
        raise InputError(f"bench got {' and '.join(sorted(kinds))} artifacts together", "bench each kind in its own run")
    return kinds.pop()


def _artifact_names(paths: list[Path]) -> list[str]:
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def bench(cfg: BenchConfig, quiet: bool = False, verbose: bool = False) -> dict[str, Any]:
    """Run the benchmark; write bench.json / bench.md (and bench.png when matplotlib is there) to ``cfg.out``."""
    import multiprocessing

    from transformers import AutoTokenizer

    from edgekit.calibration.text import load_texts, sample_texts, tokenize_fixed

    loaded, cfg = _check(cfg)
    kind = _kind(loaded)
    generators = kind in GENERATING
    texts = load_texts(cfg.text) if cfg.text else sample_texts(min_words=max(cfg.seq_lens) * 2)
    threads = cfg.threads or os.cpu_count() or 1
    rounds = cfg.rounds or (3 if generators else max(1, cfg.repeat // 3))
    started = now_iso()
    names = _artifact_names([p for p, _ in loaded])
    tokenizers = {p: AutoTokenizer.from_pretrained(str(p)) for p, _ in loaded}
    input_names = {p: [i["name"] for i in m["export"].get("inputs", [])] for p, m in loaded}
    ctx = multiprocessing.get_context("spawn")
    from edgekit.benchmarks._worker import worker_main
    from edgekit.runtimes.registry import get_backend_entry

    workers: list[_Worker] = []
    rows: list[dict[str, Any]] = []
    progress = None
    try:
        if not quiet:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=Console(stderr=True))
            progress.start()
        n_cases = len(cfg.batches) * len(cfg.seq_lens)
        task = progress.add_task("bench: loading", total=len(loaded) * len(cfg.backends) + (1 if generators else n_cases) * rounds) if progress else None
        for (path, manifest), name in zip(loaded, names):
            source = manifest.get("source", {}).get("sha256") or str(path)
            for backend in cfg.backends:
                # Skip what a backend cannot read (ort on an OpenVINO IR), and a second torch worker for one
                # source: the reference runs the source model, so once per source is enough.
                unreadable = not get_backend_entry(backend).reads(manifest)
                duplicate_reference = backend == "torch" and any(w.backend == "torch" and w.source == source for w in workers)
                if unreadable or duplicate_reference:
                    if progress:
                        progress.advance(task)
                    continue
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=worker_main, args=(child, str(path), backend, threads, cfg.settle_s), daemon=True)
                proc.start()
                worker = _Worker(path, name, backend, proc, parent, source)
                workers.append(worker)
                worker.info = worker.expect(verbose, "could not load")
                if progress:
                    progress.advance(task)
        per_block = max(1, math.ceil(cfg.repeat / rounds))
        if generators:
            from edgekit.benchmarks.generation import run_generation_cases, run_seq2seq_cases

            if progress:
                progress.update(task, description="bench: generation")
            if kind == "seq2seq":
                rows.extend(run_seq2seq_cases(cfg, workers, tokenizers, dict(loaded), texts, rounds, progress, task, verbose))
            else:
                rows.extend(run_generation_cases(cfg, workers, tokenizers, texts, rounds, progress, task, verbose))
        for batch in ([] if generators else cfg.batches):
            for seq in cfg.seq_lens:
                if progress:
                    progress.update(task, description=f"bench: batch {batch}, seq {seq}")
                inputs = {p: tokenize_fixed(tokenizers[p], texts, batch, seq, input_names[p]) for p, _ in loaded}
                outputs = {id(w): w.ask("inputs", {"inputs": inputs[w.artifact], "warmup": cfg.warmup}, verbose) for w in workers}
                latencies: dict[int, list[float]] = {id(w): [] for w in workers}
                for r in range(rounds):
                    order = workers[r % len(workers):] + workers[: r % len(workers)]  # rotate who goes first
                    for w in order:
                        latencies[id(w)].extend(w.ask("time", per_block, verbose))
                    if progress:
                        progress.advance(task)
                for w in workers:
                    row = {"artifact": w.name, "backend": w.backend, "batch": batch, "seq_len": seq, "runs": len(latencies[id(w)])}
                    row.update(percentiles(latencies[id(w)]))
                    row["throughput_per_s"] = batch / (row["mean_ms"] / 1e3)
                    row["model_mb"] = w.info["model_bytes"] / 2**20
                    ref = next((x for x in workers if x.source == w.source and x.backend == "torch"), None)
                    if ref is not None:
                        row.update(agreement(outputs[id(ref)], outputs[id(w)], inputs[w.artifact].get("attention_mask")))
                    rows.append(row)
        quality = _quality(cfg, workers, tokenizers, input_names, dict(loaded), progress, task, verbose) if cfg.eval_data is not None and not generators else []
        for w in workers:
            stats = w.ask("stop", None, verbose)
            w.info.update(stats)
    finally:
        if progress:
            progress.stop()
        for w in workers:
            w.process.join(timeout=5)
            if w.process.is_alive():
                w.process.kill()
    source_of = {w.name: w.source for w in workers}
    for row in rows:
        w = next(x for x in workers if x.name == row["artifact"] and x.backend == row["backend"])
        row["peak_rss_mb"] = w.info.get("peak_rss_mb")
        row["load_s"] = w.info.get("load_s")
        if row.get("kind") in GENERATING:
            torch_row = next((x for x in rows if source_of[x["artifact"]] == w.source and x["backend"] == "torch"), None)
            row["speedup_vs_torch"] = row["tokens_per_s"] / torch_row["tokens_per_s"] if torch_row else None
            continue
        torch_row = next((x for x in rows if source_of[x["artifact"]] == w.source and x["backend"] == "torch" and x["batch"] == row["batch"] and x["seq_len"] == row["seq_len"]), None)
        row["speedup_vs_torch"] = torch_row["p50_ms"] / row["p50_ms"] if torch_row else None
    result = {
        "stage": "bench",
        "created_at": started,
        "finished_at": now_iso(),
        "config": to_jsonable(cfg),
        "threads": threads,
        "rounds": rounds,
        "inputs": str(cfg.text) if cfg.text else "edgekit built-in sample text",
        "artifacts": {name: {"path": str(p), "source": m.get("source", {}).get("path"), "export": {k: m.get("export", {}).get(k) for k in ("task", "exporter", "opset")}} for (p, m), name in zip(loaded, names)},
        "rows": rows,
        "quality": quality,
        "environment": environment(),
        "cpu": cpu_info(),
    }
    if cfg.out is not None:
        from edgekit.benchmarks.report import markdown_table, plot

        with staged_output(cfg.out, cfg.overwrite) as tmp:
            write_json(tmp / "bench.json", result)
            (tmp / "bench.md").write_text(markdown_table(result))
            plot(result, tmp / "bench.png")
            write_json(tmp / "manifest.json", {"stage": "bench", "edgekit_version": environment()["packages"].get("edgekit"), "created_at": started, "config": to_jsonable(cfg), "files": ["bench.json", "bench.md"] + (["bench.png"] if (tmp / "bench.png").exists() else [])})
    return result
