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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.artifacts import cpu_info, environment, now_iso, staged_output, to_jsonable, write_json
from edgekit.benchmarks.bench_config import BenchConfig, check_bench
from edgekit.benchmarks.ctc_bench import utterance_description
from edgekit.benchmarks.dual_bench import timing_images_description
from edgekit.benchmarks.generation import GENERATING
from edgekit.benchmarks.measures import case_rows, reference_worker
from edgekit.benchmarks.power import TIMED, PowerMonitor, add_power
from edgekit.benchmarks.vision_bench import images_description
from edgekit.errors import EdgekitError, InputError
from edgekit.numerics import masked_mean, row_cosines

log = logging.getLogger("edgekit.bench")


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

    timed: list[tuple[float, float]] = field(default_factory=list)
    """(start, end) of each timed command: what power (benchmarks/power.py) is averaged over."""

    def ask(self, command: str, arg: Any = None, verbose: bool = False):
        start = time.perf_counter()
        self.conn.send((command, arg))
        reply = self.expect(verbose, "failed")
        if command in TIMED:
            self.timed.append((start, time.perf_counter()))
        return reply

    def expect(self, verbose: bool, what: str):
        """The next reply's payload; a worker's error report becomes an EdgekitError naming ``what`` went wrong."""
        kind, payload = self.receive()
        if kind == "error":
            if verbose:
                log.error("worker traceback:\n%s", payload["traceback"])
            message = (
                payload["message"]
                if payload["user_error"]
                else f"{payload['type']}: {payload['message']}".splitlines()[0]
            )
            if payload["user_error"]:  # the worker's line already says what to do
                raise EdgekitError(f"backend '{self.backend}' on '{self.name}' {what}: {message}")
            raise EdgekitError(
                f"backend '{self.backend}' on '{self.name}' {what}: {message}",
                "rerun with --verbose for the traceback",
            )
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


def _quality(
    cfg: BenchConfig,
    workers: list[_Worker],
    tokenizers: dict,
    input_names: dict,
    manifests: dict,
    progress: Any,
    task: Any,
    verbose: bool,
) -> list[dict[str, Any]]:
    """Embeddings of every worker on the eval texts, compared with the PyTorch worker of the same source."""
    from edgekit.calibration.text import load_labeled, tokenize_natural
    from edgekit.compress.quality import probe_accuracy

    texts, labels = load_labeled(cfg.eval_data, encoding=cfg.encoding)
    max_length = max(cfg.seq_lens)
    if progress:
        progress.update(task, description=f"bench: quality on {len(texts)} texts")
    pooled: dict[int, np.ndarray] = {}
    for w in workers:
        feeds = [
            tokenize_natural(
                tokenizers[w.artifact], texts[i : i + 16], input_names[w.artifact], max_length=max_length
            )
            for i in range(0, len(texts), 16)
        ]
        output = (
            "sentence_embedding"
            if any(
                o.get("name") == "sentence_embedding"
                for o in manifests[w.artifact]["export"].get("outputs", [])
            )
            else "last_hidden_state"
        )
        outs = w.ask("embed", {"feeds": feeds, "output": output}, verbose)
        rows = []
        for feed, out in zip(feeds, outs):
            rows.append(masked_mean(out, feed["attention_mask"]) if out.ndim == 3 else out)
        pooled[id(w)] = np.concatenate(rows).astype(np.float64)
    accuracy = (
        {id(w): probe_accuracy(pooled[id(w)], labels, 0) for w in workers} if labels is not None else {}
    )
    result = []
    for w in workers:
        ref = reference_worker(w, workers)
        row: dict[str, Any] = {"artifact": w.name, "backend": w.backend, "texts": len(texts)}
        if ref is not None:
            a, b = pooled[id(w)], pooled[id(ref)]
            row["mean_cosine"] = float(row_cosines(a, b).mean())
        if accuracy:
            row["accuracy"] = accuracy[id(w)]
            row["relative_accuracy"] = accuracy[id(w)] / accuracy[id(ref)] if ref is not None else None
        result.append(row)
    return result


def bench_kind(manifest: dict) -> str:
    """'text-generation', 'seq2seq', 'image-text', 'speech-ctc', 'image-features' or 'encoder':
    what bench times an artifact as."""
    from edgekit.models.ctc import CTC_TASKS
    from edgekit.models.dual import DUAL_TASKS
    from edgekit.models.vision import VISION_TASKS

    task = manifest.get("export", {}).get("task")
    if task in GENERATING:
        return task
    kinds = {**dict.fromkeys(DUAL_TASKS, "image-text"), **dict.fromkeys(CTC_TASKS, "speech-ctc")}
    return {**kinds, **dict.fromkeys(VISION_TASKS, "image-features")}.get(task, "encoder")


MEDIA_KINDS = {
    "image-text": "edgekit.benchmarks.dual_bench",
    "speech-ctc": "edgekit.benchmarks.ctc_bench",
    "image-features": "edgekit.benchmarks.vision_bench",
}
"""Kinds whose cases are not text batch x sequence: each module says how many cases it times."""


@dataclass
class _Run:
    """What every kind's cases are run with."""

    cfg: BenchConfig
    workers: list[_Worker]
    loaded: list[tuple[Path, dict]]
    tokenizers: dict
    input_names: dict
    texts: list[str]
    rounds: int
    progress: Any
    task: Any
    verbose: bool


def _timed_rows(kind: str, run: _Run) -> list[dict[str, Any]]:
    """The latency rows of the run's kind: generation, encoder-decoders, image-text towers, encoders."""
    common = (run.rounds, run.progress, run.task, run.verbose)
    if kind in GENERATING:
        from edgekit.benchmarks.generation import run_generation_cases, run_seq2seq_cases

        if run.progress:
            run.progress.update(run.task, description="bench: generation")
        if kind == "seq2seq":
            return run_seq2seq_cases(
                run.cfg, run.workers, run.tokenizers, dict(run.loaded), run.texts, *common
            )
        return run_generation_cases(run.cfg, run.workers, run.tokenizers, run.texts, *common)
    if kind == "speech-ctc":
        from edgekit.benchmarks.ctc_bench import run_ctc_cases

        return run_ctc_cases(run.cfg, run.workers, run.loaded, run.tokenizers, *common)
    if kind == "image-text":
        from edgekit.benchmarks.dual_bench import run_dual_cases

        return run_dual_cases(run.cfg, run.workers, run.loaded, run.tokenizers, run.texts, *common)
    if kind == "image-features":
        from edgekit.benchmarks.vision_bench import run_vision_cases

        return run_vision_cases(run.cfg, run.workers, run.loaded, *common)
    return _latency_rows(
        run.cfg, run.workers, run.tokenizers, run.input_names, run.loaded, run.texts, *common
    )


def _quality_rows(kind: str, run: _Run) -> list[dict[str, Any]]:
    """Quality on --eval-data against the fp32 reference (encoders, image-text models, vision
    encoders, encoder-decoders)."""
    from edgekit.benchmarks.caption_bench import caption_quality

    if kind == "image-text":
        from edgekit.benchmarks.dual_bench import dual_quality

        return dual_quality(
            run.cfg, run.workers, run.loaded, run.tokenizers, run.progress, run.task, run.verbose
        )
    if kind == "image-features":
        from edgekit.benchmarks.vision_bench import vision_quality

        return vision_quality(run.cfg, run.workers, run.loaded, run.progress, run.task, run.verbose)
    if kind == "seq2seq":  # captions, transcripts or text outputs against fp32's
        return caption_quality(
            run.cfg, run.workers, run.loaded, run.tokenizers, run.progress, run.task, run.verbose
        )
    if kind in GENERATING or kind == "speech-ctc":  # CTC rows carry their transcripts' error rate
        return []
    return _quality(
        run.cfg,
        run.workers,
        run.tokenizers,
        run.input_names,
        dict(run.loaded),
        run.progress,
        run.task,
        run.verbose,
    )


def _kind(loaded: list[tuple[Path, dict]]) -> str:
    """What every artifact of the run is (one kind per run)."""
    kinds = {bench_kind(m) for _, m in loaded}
    if len(kinds) > 1:
        raise InputError(
            f"bench got {' and '.join(sorted(kinds))} artifacts together", "bench each kind in its own run"
        )
    return kinds.pop()


def _artifact_names(paths: list[Path]) -> list[str]:
    names = [p.name for p in paths]
    if len(set(names)) == len(names):
        return names
    return [str(p) for p in paths]


def bench(cfg: BenchConfig, quiet: bool = False, verbose: bool = False) -> dict[str, Any]:
    """Run the benchmark; write bench.json / bench.md (and bench.png when matplotlib is there) to ``cfg.out``."""
    loaded, cfg = check_bench(cfg)
    kind = _kind(loaded)
    generators = kind in GENERATING
    texts, tokenizers = _texts_and_tokenizers(cfg, loaded) if kind != "image-features" else ([], {})
    threads = cfg.threads or os.cpu_count() or 1
    rounds = cfg.rounds or (3 if generators else max(1, cfg.repeat // 3))
    started = now_iso()
    names = _artifact_names([p for p, _ in loaded])
    input_names = {p: [i["name"] for i in m["export"].get("inputs", [])] for p, m in loaded}
    workers: list[_Worker] = []
    rows: list[dict[str, Any]] = []
    progress = None if quiet else _progress_bar()
    power = PowerMonitor() if PowerMonitor.available() else None  # a Jetson: watts during timed runs
    try:
        if power is not None:
            power.__enter__()
        n_cases = len(cfg.batches) * len(cfg.seq_lens)
        if kind in MEDIA_KINDS:
            import importlib

            n_cases = importlib.import_module(MEDIA_KINDS[kind]).cases_count(cfg)
        total = len(loaded) * len(cfg.backends) + (1 if generators else n_cases) * rounds
        task = progress.add_task("bench: loading", total=total) if progress else None
        workers.extend(_start_workers(cfg, loaded, names, threads, progress, task, verbose))
        context = _Run(cfg, workers, loaded, tokenizers, input_names, texts, rounds, progress, task, verbose)
        rows.extend(_timed_rows(kind, context))
        quality = _quality_rows(kind, context) if cfg.eval_data is not None else []
        for w in workers:
            w.info.update(w.ask("stop", None, verbose))
    finally:
        if power is not None:
            power.__exit__(None, None, None)
        if progress:
            progress.stop()
        for w in workers:
            w.process.join(timeout=5)
            if w.process.is_alive():
                w.process.kill()
    _add_worker_figures(rows, workers)
    add_power(rows, {(w.name, w.backend): w.timed for w in workers}, power)
    result = {
        "stage": "bench",
        "created_at": started,
        "finished_at": now_iso(),
        "config": to_jsonable(cfg),
        "threads": threads,
        "rounds": rounds,
        "inputs": str(cfg.text) if cfg.text else "edgekit built-in sample text",
        **({"images": timing_images_description(cfg)} if kind == "image-text" else {}),
        **({"audio": utterance_description(cfg)} if kind == "speech-ctc" else {}),
        **({"images": images_description(cfg)} if kind == "image-features" else {}),
        "artifacts": _artifacts_section(loaded, names),
        "rows": rows,
        "quality": quality,
        "environment": environment(),
        "cpu": cpu_info(),
    }
    if cfg.out is not None:
        _write_results(cfg, result, started)
    return result


def _texts_and_tokenizers(cfg: BenchConfig, loaded: list[tuple[Path, dict]]) -> tuple[list[str], dict]:
    """The input texts (--text, else the built-in sample) and each artifact's tokenizer."""
    from edgekit.calibration.text import load_texts, sample_texts
    from edgekit.models.tokenizer import load_tokenizer

    texts = (
        load_texts(cfg.text, encoding=cfg.encoding)
        if cfg.text
        else sample_texts(min_words=max(cfg.seq_lens) * 2)
    )
    needed_for = "--eval-data (quality on text)" if cfg.eval_data is not None else None
    return texts, {p: load_tokenizer(p, needed_for=needed_for) for p, _ in loaded}


def _artifacts_section(loaded: list[tuple[Path, dict]], names: list[str]) -> dict[str, Any]:
    """What bench.json records of each artifact: where it is, its source, how it was exported."""
    return {
        name: {
            "path": str(p),
            "source": m.get("source", {}).get("path"),
            "export": {k: m.get("export", {}).get(k) for k in ("task", "exporter", "opset")},
        }
        for (p, m), name in zip(loaded, names)
    }


def _progress_bar():
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    progress.start()
    return progress


def _start_workers(
    cfg: BenchConfig, loaded, names: list[str], threads: int, progress, task, verbose: bool
) -> list[_Worker]:
    """One spawned worker process per (artifact, backend) that can read it."""
    import multiprocessing

    from edgekit.benchmarks._worker import worker_main
    from edgekit.runtimes.registry import get_backend_entry

    ctx = multiprocessing.get_context("spawn")
    workers: list[_Worker] = []
    wanted = {(Path(p).expanduser().resolve(), b) for p, b in cfg.runs}
    for (path, manifest), name in zip(loaded, names):
        source = manifest.get("source", {}).get("sha256") or str(path)
        for backend in cfg.backends:
            # Skip what a backend cannot read (ort on an OpenVINO IR), a pair the caller left out, and a
            # second torch worker for one source: the reference runs the source model, so once per source.
            unreadable = not get_backend_entry(backend).reads(manifest) or (
                bool(wanted) and (path, backend) not in wanted
            )
            duplicate_reference = backend == "torch" and any(
                w.backend == "torch" and w.source == source for w in workers
            )
            if not (unreadable or duplicate_reference):
                parent, child = ctx.Pipe()
                proc = ctx.Process(
                    target=worker_main,
                    args=(child, str(path), backend, threads, cfg.settle_s, verbose),
                    daemon=True,
                )
                proc.start()
                worker = _Worker(path, name, backend, proc, parent, source)
                workers.append(worker)
                worker.info = worker.expect(verbose, "could not load")
            if progress:
                progress.advance(task)
    return workers


def _latency_rows(
    cfg: BenchConfig,
    workers: list[_Worker],
    tokenizers,
    input_names,
    loaded,
    texts,
    rounds: int,
    progress,
    task,
    verbose: bool,
) -> list[dict[str, Any]]:
    """Encoders: per (batch, sequence), the same inputs to every worker, then interleaved timed blocks."""
    from edgekit.calibration.text import tokenize_fixed

    rows = []
    per_block = max(1, math.ceil(cfg.repeat / rounds))
    for batch in cfg.batches:
        for seq in cfg.seq_lens:
            if progress:
                progress.update(task, description=f"bench: batch {batch}, seq {seq}")
            inputs = {p: tokenize_fixed(tokenizers[p], texts, batch, seq, input_names[p]) for p, _ in loaded}
            rows += case_rows(
                workers,
                lambda w: {"inputs": inputs[w.artifact], "warmup": cfg.warmup},
                {"batch": batch, "seq_len": seq},
                per_block,
                rounds,
                verbose,
                progress and (lambda: progress.advance(task)),
                mask=lambda w: inputs[w.artifact].get("attention_mask"),
            )
    return rows


def _add_worker_figures(rows: list[dict[str, Any]], workers: list[_Worker]) -> None:
    """Peak memory and load time of each row's worker, and its speed-up over the torch row of its source."""
    source_of = {w.name: w.source for w in workers}
    for row in rows:
        w = next(x for x in workers if x.name == row["artifact"] and x.backend == row["backend"])
        row["peak_rss_mb"] = w.info.get("peak_rss_mb")
        row["load_s"] = w.info.get("load_s")
        same_source = [x for x in rows if source_of[x["artifact"]] == w.source and x["backend"] == "torch"]
        if row.get("kind") in GENERATING:
            torch_row = same_source[0] if same_source else None
            row["speedup_vs_torch"] = row["tokens_per_s"] / torch_row["tokens_per_s"] if torch_row else None
            continue
        torch_row = next(
            (
                x
                for x in same_source
                if (x["batch"], x["seq_len"], x.get("tower"))
                == (row["batch"], row["seq_len"], row.get("tower"))
            ),
            None,
        )
        row["speedup_vs_torch"] = torch_row["p50_ms"] / row["p50_ms"] if torch_row else None


def _write_results(cfg: BenchConfig, result: dict[str, Any], started: str) -> None:
    from edgekit.benchmarks.report import markdown_table, plot

    with staged_output(cfg.out, cfg.overwrite) as tmp:
        write_json(tmp / "bench.json", result)
        (tmp / "bench.md").write_text(markdown_table(result))
        plot(result, tmp / "bench.png")
        files = ["bench.json", "bench.md"] + (["bench.png"] if (tmp / "bench.png").exists() else [])
        write_json(
            tmp / "manifest.json",
            {
                "stage": "bench",
                "edgekit_version": environment()["packages"].get("edgekit"),
                "created_at": started,
                "config": to_jsonable(cfg),
                "files": files,
            },
        )
