"""``edgekit bench`` for CTC speech artifacts (wav2vec2, HuBERT, WavLM): each utterance timed whole
on every backend, as the real-time factor, and each variant's transcript scored against the fp32
PyTorch reference's in the same run.

Utterances: the WAV files of ``--eval-data`` (a file or a folder), else the built-in sentences
spoken by eSpeak NG. One row per utterance and backend:

- ``audio_s``: its length; ``p50_ms`` etc.: the time of one pass over it (batch 1);
- ``rtf``: p50 time over audio time (below 1 is faster than real time), ``x_realtime`` its inverse;
- ``cer_vs_fp32``: character error rate of this variant's greedy transcript against the
  reference's (the PyTorch worker of the same source), and ``transcript`` itself.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgekit.benchmarks.measures import interleaved, percentiles, reference_worker
from edgekit.errors import InputError

SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Edge devices run small and fast models close to where the data is made.",
    "A speech encoder turns sound into letters, frame by frame, without a decoder.",
)

CTC_COLUMNS = (
    ("artifact", "artifact", "{}"),
    ("backend", "backend", "{}"),
    ("utterance", "utterance", "{}"),
    ("audio_s", "audio s", "{:.2f}"),
    ("p50_ms", "p50 ms", "{:.1f}"),
    ("p90_ms", "p90 ms", "{:.1f}"),
    ("rtf", "RTF", "{:.4f}"),
    ("x_realtime", "x real time", "{:.1f}"),
    ("speedup_vs_torch", "vs torch", "{:.2f}x"),
    ("cer_vs_fp32", "CER vs fp32", "{:.4f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
    ("model_mb", "model MB", "{:.1f}"),
)


def utterances(cfg, rate: int = 16000) -> list[tuple[str, np.ndarray]]:
    """(name, samples at ``rate``) of every utterance timed."""
    from edgekit.audio import read_wav

    if cfg.eval_data is not None:
        from edgekit.calibration.audio import require_audio

        return [(f.name, read_wav(f, rate)) for f in require_audio(cfg.eval_data, "--eval-data")]
    from edgekit.audio import resample, speak

    spoken = []
    for i, sentence in enumerate(SENTENCES):
        samples, source_rate = speak(sentence)
        spoken.append((f"espeak-{i}", resample(samples, source_rate, rate)))
    return spoken


def utterance_description(cfg) -> str:
    return (
        f"the WAV files of {cfg.eval_data}"
        if cfg.eval_data is not None
        else f"{len(SENTENCES)} sentences spoken by eSpeak NG (edgekit.benchmarks.ctc_bench.SENTENCES)"
    )


def cases_count(cfg) -> int:
    from edgekit.calibration.audio import audio_files

    return len(audio_files(cfg.eval_data)) if cfg.eval_data is not None else len(SENTENCES)


def run_ctc_cases(cfg, workers, loaded, tokenizers, rounds, progress, task, verbose) -> list[dict[str, Any]]:
    """Per utterance: the same audio to every worker (each normalised by its artifact's own
    extractor), then interleaved timed blocks; transcripts from the outputs of the first pass, with
    the tokenizers bench loaded for every artifact."""
    from edgekit.models.ctc import audio_inputs, load_extractor, transcript
    from edgekit.numerics import error_rate

    manifests = dict(loaded)
    rates = {int(m["export"]["ctc"]["sampling_rate"]) for m in manifests.values()}
    if len(rates) > 1:
        raise InputError(
            f"the speech artifacts read audio at different rates ({sorted(rates)} Hz)", "bench them apart"
        )
    extractors = {p: load_extractor(p) for p in manifests}
    names = {p: [i["name"] for i in m["export"]["inputs"]] for p, m in manifests.items()}
    blank = {p: int(m["export"]["ctc"]["blank_token_id"]) for p, m in manifests.items()}
    per_block = max(1, math.ceil(cfg.repeat / rounds))
    rows = []
    for name, samples in utterances(cfg, rates.pop()):
        if progress:
            progress.update(task, description=f"bench: {name}")
        feeds = {p: audio_inputs(extractors[p], samples, names[p]) for p in manifests}
        args = {id(w): {"inputs": feeds[w.artifact], "warmup": cfg.warmup} for w in workers}
        texts = {
            id(w): transcript(
                tokenizers[w.artifact], w.ask("inputs", args[id(w)], verbose)["logits"][0], blank[w.artifact]
            )
            for w in workers
        }
        latencies = interleaved(
            workers, per_block, rounds, verbose, progress and (lambda: progress.advance(task))
        )
        seconds = len(samples) / extractors[workers[0].artifact].sampling_rate
        for w in workers:
            row: dict[str, Any] = {
                "artifact": w.name,
                "backend": w.backend,
                "utterance": name,
                "batch": 1,
                "seq_len": len(samples),
                "audio_s": seconds,
                "runs": len(latencies[id(w)]),
                **percentiles(latencies[id(w)]),
            }
            row["throughput_per_s"] = 1e3 / row["mean_ms"]
            row["rtf"] = row["p50_ms"] / 1e3 / seconds
            row["x_realtime"] = 1 / row["rtf"]
            row["model_mb"] = w.info["model_bytes"] / 2**20
            row["transcript"] = texts[id(w)]
            ref = reference_worker(w, workers)
            if ref is not None:
                row["cer_vs_fp32"] = error_rate([texts[id(ref)]], [texts[id(w)]])
            rows.append(row)
    return rows


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per artifact x backend over all utterances: total audio over total time, and the CER over all characters."""
    out = []
    keys = sorted(
        {(r["artifact"], r["backend"]) for r in rows}, key=lambda k: [r["artifact"] for r in rows].index(k[0])
    )
    for artifact, backend in keys:
        mine = [r for r in rows if (r["artifact"], r["backend"]) == (artifact, backend)]
        audio, spent = sum(r["audio_s"] for r in mine), sum(r["p50_ms"] for r in mine) / 1e3
        out.append({"artifact": artifact, "backend": backend, "audio_s": audio, "rtf": spent / audio})
    return out
