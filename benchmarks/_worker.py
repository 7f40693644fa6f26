"""A benchmark worker: one process per (artifact, backend), driven by the parent over a pipe.

One process each keeps peak memory per backend honest and imports apart (the ONNX Runtime
worker never imports torch). The parent interleaves timing blocks across workers, so slow
drift of a shared machine hits every backend alike.
"""

from __future__ import annotations

import functools
import resource
import time
import traceback

from edgekit.models.dual import DUAL_TASKS


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    """This process's own peak RSS. VmHWM starts afresh at exec; ru_maxrss would carry the parent's peak."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_main(
    conn, artifact: str, backend: str, threads: int | None, settle_s: float, verbose: bool = False
) -> None:
    from edgekit.quiet import quiet_libraries

    quiet_libraries(verbose)  # a spawned process: the CLI's logging set-up is not inherited
    try:
        baseline = _rss_mb()
        start = time.perf_counter()
        session, towers, model_bytes = _open(artifact, backend, threads)
        conn.send(
            (
                "ready",
                {
                    "load_s": time.perf_counter() - start,
                    "rss_before_load_mb": baseline,
                    "rss_after_load_mb": _rss_mb(),
                    "model_bytes": model_bytes,
                    "tower_bytes": {name: t.model_bytes() for name, t in towers.items()},
                },
            )
        )
        inputs = None
        while True:
            command, arg = conn.recv()
            if isinstance(arg, dict) and "tower" in arg:
                session = towers[arg["tower"]]
            if command == "inputs":
                inputs = arg["inputs"]
                outputs = session.run(inputs)
                for _ in range(arg["warmup"]):
                    session.run(inputs)
                time.sleep(settle_s)
                conn.send(("outputs", outputs))
            elif command == "time":
                latencies = []
                for _ in range(arg):
                    t0 = time.perf_counter()
                    session.run(inputs)
                    latencies.append(time.perf_counter() - t0)
                time.sleep(settle_s)  # let spinning runtime threads go idle before the next worker runs
                conn.send(("latencies", latencies))
            elif command == "generate":
                conn.send(("steps", timed_generation(session, artifact, arg["prompt"], arg["new_tokens"])))
                time.sleep(settle_s)
            elif command == "seq2seq":
                conn.send(
                    ("timings", timed_seq2seq(session, arg["inputs"], arg["prompt"], arg["new_tokens"]))
                )
                time.sleep(settle_s)
            elif command == "caption":
                conn.send(("tokens", captions(session, arg)))
                time.sleep(settle_s)
            elif command == "recompute":
                conn.send(("latencies", timed_recompute(session, artifact, arg["prompt"], arg["repeat"])))
                time.sleep(settle_s)
            elif command == "embed":
                conn.send(
                    ("outputs", [session.run(feed, [arg["output"]])[arg["output"]] for feed in arg["feeds"]])
                )
                time.sleep(settle_s)
            elif command == "stop":
                conn.send(("stats", {"peak_rss_mb": _peak_rss_mb()}))
                return
    except BaseException as exc:  # noqa: BLE001 - report everything to the parent, which decides
        from edgekit.errors import EdgekitError

        conn.send(
            (
                "error",
                {
                    "type": type(exc).__name__,
                    "message": str(exc),
                    "user_error": isinstance(exc, EdgekitError),
                    "traceback": traceback.format_exc(),
                },
            )
        )
    finally:
        conn.close()


class _Timed:
    """Wraps a session and records the wall time of every run (one run = one generation step)."""

    def __init__(self, inner):
        self.inner = inner
        self.times: list[float] = []
        self.backend = inner.backend
        self.stateful = inner.stateful
        self.keeps_values = (
            inner.keeps_values
        )  # the IO-binding path of ONNX Runtime sessions, timed the same way

    def input_specs(self):
        return self.inner.input_specs()

    def output_specs(self):
        return self.inner.output_specs()

    def model_bytes(self) -> int:
        return self.inner.model_bytes()

    def reset(self, batch: int = 1) -> None:
        self.inner.reset(batch)

    def select_rows(self, rows) -> None:
        self.inner.select_rows(rows)

    def run(self, feeds, output_names=None):
        t0 = time.perf_counter()
        result = self.inner.run(feeds, output_names)
        self.times.append(time.perf_counter() - t0)
        return result

    def run_keep(self, *args, **kwargs):
        t0 = time.perf_counter()
        result = self.inner.run_keep(*args, **kwargs)
        self.times.append(time.perf_counter() - t0)
        return result

    def static_cache(self, *args, **kwargs):
        return _TimedCache(self.inner.static_cache(*args, **kwargs), self.times)


class _TimedCache:
    """A session's static cache whose runs are timed into the session wrapper's list."""

    def __init__(self, inner, times: list[float]):
        self.inner, self.times = inner, times

    def run(self, inputs, fetch):
        t0 = time.perf_counter()
        result = self.inner.run(inputs, fetch)
        self.times.append(time.perf_counter() - t0)
        return result

    def arrays(self, length: int):
        return self.inner.arrays(length)


@functools.lru_cache(maxsize=None)
def _decoder_io(artifact: str):
    """Read once per worker: every generate/recompute command of the bench asks for it."""
    from edgekit.artifacts import read_manifest
    from edgekit.models.cache_io import DecoderIO

    return DecoderIO.from_manifest(read_manifest(artifact))


def timed_generation(session, artifact: str, prompt: list[int], new_tokens: int) -> list[float]:
    """Greedy generation of exactly ``new_tokens`` (EOS ignored); the latency of each step (step 0 = prefill)."""
    from edgekit.runtimes.generate import GenerationConfig, generate_ids

    timed = _Timed(session)
    generate_ids(
        timed, _decoder_io(artifact), prompt, GenerationConfig(max_new_tokens=new_tokens), eos_token_ids=()
    )
    return timed.times


def timed_recompute(session, artifact: str, prompt: list[int], repeat: int) -> list[float]:
    """Cost of one token without a cache: a full forward over the whole context."""
    import numpy as np

    io = _decoder_io(artifact)
    ids = np.asarray([prompt], dtype=np.int64)
    mask = np.ones_like(ids)
    feeds = {"input_ids": ids, "attention_mask": mask}
    if io.uses_position_ids:
        feeds["position_ids"] = np.arange(ids.shape[1], dtype=np.int64)[None]
    stateful = session.stateful
    if not stateful:
        feeds.update(io.empty_past(1))
    times = []
    for _ in range(repeat):
        if stateful:
            session.reset(1)
        t0 = time.perf_counter()
        session.run(feeds, ["logits"])
        times.append(time.perf_counter() - t0)
    return times


def _open(artifact: str, backend: str, threads: int | None) -> tuple[object, dict, int]:
    """The session the commands run, the towers of an image-text artifact (the parent names the one
    each command is for), and the bytes of weights held."""
    from edgekit.runtimes.registry import load_session

    task = _task(artifact)
    if task == "seq2seq":
        session, model_bytes = _open_seq2seq(artifact, backend, threads)
        return session, {}, model_bytes
    if task in DUAL_TASKS:
        towers = _open_towers(artifact, backend, threads)
        return towers["text"], towers, sum(t.model_bytes() for t in towers.values())
    session = load_session(artifact, backend, threads=threads)
    return session, {}, session.model_bytes()


def _task(artifact: str) -> str | None:
    from edgekit.artifacts import read_manifest

    return read_manifest(artifact).get("export", {}).get("task")


def _open_towers(artifact: str, backend: str, threads: int | None) -> dict:
    """An image-text artifact's two graphs, one session each, keyed 'text' and 'vision'."""
    from edgekit.artifacts import read_manifest
    from edgekit.runtimes.registry import load_session

    files = read_manifest(artifact)["export"]["model_files"]
    return {
        name: load_session(artifact, backend, threads, model_file=files[name]) for name in ("text", "vision")
    }


def _open_seq2seq(artifact: str, backend: str, threads: int | None):
    """The encoder-decoder stepper with its decoder timed, and the bytes of weights it holds (the
    PyTorch reference holds one model for both parts; exported graphs hold one each)."""
    from edgekit.runtimes.seq2seq import open_seq2seq

    stepper, _ = open_seq2seq(artifact, backend, threads)
    parts = (stepper.decoder,) if backend == "torch" else (stepper.encoder, stepper.decoder)
    model_bytes = sum(part.model_bytes() for part in parts)
    stepper.decoder = _Timed(stepper.decoder)
    return stepper, model_bytes


def timed_seq2seq(stepper, inputs, prompt: list[int], new_tokens: int) -> dict:
    """Run the encoder on ``inputs`` (None: keep the last one's cross-attention cache), then greedy
    decoding of exactly ``new_tokens`` after ``prompt`` (EOS ignored): the encoder's time and each
    decoder step's (step 0 = the prompt)."""
    from edgekit.runtimes.generate import GenerationConfig, decode

    encode_s = 0.0
    if inputs is not None:
        t0 = time.perf_counter()
        stepper.encode(inputs)
        encode_s = time.perf_counter() - t0
    stepper.decoder.times.clear()
    decode(stepper, prompt, GenerationConfig(max_new_tokens=new_tokens), eos_token_ids=())
    return {"encode_s": encode_s, "steps": list(stepper.decoder.times)}


def captions(stepper, arg: dict) -> list[list[int]]:
    """Greedy tokens for each encoder input of ``arg["feeds"]`` after its decoder prompt in
    ``arg["prompts"]``, up to EOS or ``max_new_tokens``."""
    from edgekit.runtimes.generate import GenerationConfig
    from edgekit.runtimes.seq2seq import generate_seq2seq

    cfg = GenerationConfig(max_new_tokens=arg["max_new_tokens"])
    return [
        generate_seq2seq(stepper, feed, list(prompt), cfg, eos_token_ids=tuple(arg["eos"]))
        for feed, prompt in zip(arg["feeds"], arg["prompts"])
    ]
