"""Benchmark: transcribing speech with Whisper base, edgekit on ONNX Runtime and OpenVINO (f32)
against PyTorch (transformers' Whisper ``generate``), in one run.

    python -m edgekit.benchmarks.whisper_transcribe [--rounds 5] [--threads N] [--weight-only]
        [--optimum-python PY] [--optimum-intel-python PY]    # time the peers on the same clip

The clip is English speech synthesised by eSpeak NG (about 10 s). The packaged CTranslate2
whisper-base is converted and exported once (cached). For every runtime: the latency of one
transcription (features in, token ids out), split into the encoder (run once) and greedy decoding
with the cache until EOS (the prompt of 4 special tokens, then one step per token), whose rate is
new tokens / decoding time. PyTorch decodes with ``generate(encoder_outputs=...)``. Timings are
interleaved across runtimes round by round, medians reported; the transcripts must be equal.
Peers run in their own virtualenvs (Optimum's ORTModelForSpeechSeq2Seq, optimum-intel's
OVModelForSpeechSeq2Seq) on the same features, timed the same way.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from edgekit.artifacts import cpu_info

TEXT = (
    "The quick brown fox jumps over the lazy dog. Edge devices run small models quickly, "
    "and the city council voted on the new budget for the public library."
)

_PEER = r"""
import json, sys, time, numpy as np
kind, model_dir, threads, features_path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
import torch
torch.set_num_threads(threads)
if kind == "optimum-ort":
    import onnxruntime as ort
    from optimum.onnxruntime import ORTModelForSpeechSeq2Seq
    so = ort.SessionOptions(); so.intra_op_num_threads = threads
    model = ORTModelForSpeechSeq2Seq.from_pretrained(model_dir, export=True, session_options=so)
else:
    from optimum.intel import OVModelForSpeechSeq2Seq
    model = OVModelForSpeechSeq2Seq.from_pretrained(model_dir, export=True, ov_config={"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": str(threads), "CACHE_DIR": ""})
features = torch.from_numpy(np.load(features_path))
kw = dict(language="en", task="transcribe")
model.generate(features, max_new_tokens=4, **kw)
fulls = []
for _ in range(runs):
    t0 = time.perf_counter(); out = model.generate(features, **kw); fulls.append(time.perf_counter() - t0)
print(json.dumps({"full_s": sorted(fulls)[runs // 2], "sequence": out[0].tolist()}))
"""


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def _summary(
    clip_s: float, threads: int, texts: dict, tokens: dict, encoder_s: dict, decoder_s: dict
) -> dict:
    """Median latencies per runtime, their ratios to PyTorch, and whether the transcripts agree; printed too."""
    summary: dict = {
        "clip_s": clip_s,
        "threads": threads,
        "transcript": texts["torch"],
        "transcripts_equal": len({texts[k] for k in texts if "int" not in k}) == 1,
    }
    summary["weight_only_transcripts"] = {k: v for k, v in texts.items() if "int" in k}
    for name in tokens:
        new = len(tokens[name])  # EOS included: every one is a decoder step
        enc, dec = _median(encoder_s[name]), _median(decoder_s[name])
        summary[name] = {
            "latency_ms": (enc + dec) * 1000,
            "encoder_ms": enc * 1000,
            "decoder_ms": dec * 1000,
            "new_tokens": new,
            "decode_tokens_per_s": new / dec,
        }
    for name in tokens:
        row = summary[name]
        row["speedup_vs_pytorch"] = summary["torch"]["latency_ms"] / row["latency_ms"]
        row["decode_vs_pytorch"] = row["decode_tokens_per_s"] / summary["torch"]["decode_tokens_per_s"]
        print(
            f"{name:>9}: {row['latency_ms']:7.1f} ms per transcription ({row['speedup_vs_pytorch']:.2f}x PyTorch): encoder {row['encoder_ms']:6.1f} ms, "
            f"decoding {row['decoder_ms']:6.1f} ms = {row['decode_tokens_per_s']:6.1f} tokens/s ({row['decode_vs_pytorch']:.2f}x)"
        )
    print(f"fp32 transcripts equal: {summary['transcripts_equal']} ({texts['torch']!r})")
    for name, text in summary["weight_only_transcripts"].items():
        print(f"{name} transcript {'equal to fp32' if text == texts['torch'] else 'DIFFERS: ' + repr(text)}")
    return summary


def _time_peers(
    peers: list,
    hf_dir: Path,
    threads: int,
    features: dict,
    rounds: int,
    summary: dict,
    tokenizer,
    transcript: str,
) -> dict:
    """Optimum / optimum-intel in their own virtualenvs, on the same features; ratios to edgekit's ORT / OpenVINO."""
    import numpy as np

    result = {}
    with tempfile.TemporaryDirectory() as work:
        np.save(Path(work) / "features.npy", features["input_features"])
        for kind, python in peers:
            done = subprocess.run(
                [
                    python,
                    "-c",
                    _PEER,
                    kind,
                    str(hf_dir),
                    str(threads),
                    str(Path(work) / "features.npy"),
                    str(rounds),
                ],
                capture_output=True,
                text=True,
                cwd=work,
            )
            if done.returncode != 0:
                raise SystemExit(f"{kind} with {python} failed:\n{done.stderr[-2000:]}")
            peer = json.loads(done.stdout.strip().splitlines()[-1])
            ours = summary["ort" if kind == "optimum-ort" else "openvino"]
            peer["latency_ms"] = peer["full_s"] * 1000
            peer["edgekit_speedup"] = peer["latency_ms"] / ours["latency_ms"]
            peer["transcript"] = tokenizer.decode(peer.pop("sequence"), skip_special_tokens=True).strip()
            result[kind] = peer
            print(
                f"{kind}: {peer['latency_ms']:.1f} ms per transcription; edgekit {'ort' if kind == 'optimum-ort' else 'openvino'} is {peer['edgekit_speedup']:.2f}x faster; same transcript: {peer['transcript'] == transcript}"
            )
    return result


def _artifacts(weight_only: bool) -> dict[str, Path]:
    """The cached Whisper base exports timed: fp32 on both runtimes, and weight-only int8 when asked."""
    from edgekit.assets import WHISPER_BASE
    from edgekit.export.cached import cached_export

    artifacts = {
        "ort": cached_export(WHISPER_BASE, "onnx", task="seq2seq"),
        "openvino": cached_export(WHISPER_BASE, "openvino", target="openvino", task="seq2seq"),
    }
    if weight_only:
        artifacts["ort-int8"] = cached_export(
            WHISPER_BASE, "ort-int8", target="ort", precision="int8", task="seq2seq"
        )
        artifacts["openvino-int8"] = cached_export(
            WHISPER_BASE, "openvino-int8", target="openvino", precision="int8", task="seq2seq"
        )
    return artifacts


def _time_rounds(runners: dict, rounds: int, encoder_s: dict, decoder_s: dict) -> None:
    """Interleaved rounds, rotating who goes first."""
    names = list(runners)
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            enc, dec, _ = runners[name]()
            encoder_s[name].append(enc)
            decoder_s[name].append(dec)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--weight-only", action="store_true", help="also time weight-only int8 exports on both runtimes"
    )
    parser.add_argument(
        "--optimum-python",
        default=None,
        help="python of a virtualenv with optimum[onnxruntime]: times ORTModelForSpeechSeq2Seq on the same clip",
    )
    parser.add_argument(
        "--optimum-intel-python",
        default=None,
        help="python of a virtualenv with optimum-intel[openvino]: times OVModelForSpeechSeq2Seq (f32) on the same clip",
    )
    return parser


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)

    import os

    import torch
    from transformers import AutoTokenizer, WhisperForConditionalGeneration
    from transformers.utils import logging as hf_logging

    from edgekit.assets import WHISPER_BASE
    from edgekit.audio import resample, speak
    from edgekit.runtimes.generate import GenerationConfig, decode
    from edgekit.runtimes.seq2seq import open_seq2seq
    from edgekit.runtimes.speech import SpeechPrompt, audio_features

    hf_logging.set_verbosity_error()
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    hf_dir = WHISPER_BASE.source_dir()
    artifacts = _artifacts(args.weight_only)
    samples, rate = speak(TEXT)
    audio = resample(samples, rate, 16000)
    features = audio_features(artifacts["ort"], audio)
    tokenizer = AutoTokenizer.from_pretrained(str(artifacts["ort"]))
    model = WhisperForConditionalGeneration.from_pretrained(str(hf_dir)).eval()
    manifest = json.loads((artifacts["ort"] / "manifest.json").read_text())["export"]
    prompter = SpeechPrompt.from_artifact(artifacts["ort"], int(manifest["decoder_start_token_id"]))
    prompt = prompter.tokens(prompter.language_token("en"))
    eos = tuple(manifest["eos_token_ids"])
    steppers = {name: open_seq2seq(path, "auto", threads)[0] for name, path in artifacts.items()}

    def run_edgekit(name: str) -> tuple[float, float, list[int]]:
        stepper = steppers[name]
        cfg = GenerationConfig(
            max_new_tokens=limit,
            suppress_tokens=prompter.suppress_tokens,
            begin_suppress_tokens=prompter.begin_suppress_tokens,
        )
        t0 = time.perf_counter()
        stepper.encode(features)
        t1 = time.perf_counter()
        ids = decode(stepper, prompt, cfg, eos)
        return t1 - t0, time.perf_counter() - t1, ids

    def run_torch() -> tuple[float, float, list[int]]:
        with torch.inference_mode():
            t0 = time.perf_counter()
            encoded = model.model.encoder(torch.from_numpy(features["input_features"]))
            t1 = time.perf_counter()
            out = model.generate(
                encoder_outputs=encoded, language="en", task="transcribe", max_new_tokens=limit
            )
            t2 = time.perf_counter()
        ids = out[0].tolist()
        return t1 - t0, t2 - t1, ids[len(prompt) :] if ids[: len(prompt)] == prompt else ids

    runners = {"torch": run_torch, **{name: (lambda name=name: run_edgekit(name)) for name in artifacts}}
    limit = 440 - len(prompt)
    tokens = {name: run()[2] for name, run in runners.items()}  # warm-up, and the transcripts
    texts = {name: tokenizer.decode(ids, skip_special_tokens=True).strip() for name, ids in tokens.items()}
    encoder_s: dict[str, list[float]] = {k: [] for k in runners}
    decoder_s: dict[str, list[float]] = {k: [] for k in runners}
    _time_rounds(runners, args.rounds, encoder_s, decoder_s)
    summary = _summary(len(audio) / 16000, threads, texts, tokens, encoder_s, decoder_s)
    peers = [
        (k, p)
        for k, p in (("optimum-ort", args.optimum_python), ("optimum-intel", args.optimum_intel_python))
        if p
    ]
    if peers:
        summary["peers"] = _time_peers(
            peers, hf_dir, threads, features, args.rounds, summary, tokenizer, texts["torch"]
        )
    record = {"benchmark": "whisper_transcribe", "cpu": cpu_info(), "model": WHISPER_BASE.name}
    print(json.dumps({**record, "summary": summary}))
    return summary


if __name__ == "__main__":
    main()
