"""Output agreement of encoder-decoders against the fp32 PyTorch reference of the same source, on
``--eval-data``: image captioners caption its photos, speech models (Whisper) transcribe its WAV
files, text models (T5, BART, Marian) answer its texts.

Each worker decodes every input (prepared by its artifact's own preprocessor, feature extractor
or tokenizer) greedily, up to ``CAPTION_TOKENS`` new tokens or EOS; the reference is the PyTorch
worker of the same source. Per artifact x backend, with ``<what>`` = caption, transcript or output:

- ``<what>_exact``: the share of inputs whose output is token for token the reference's;
- ``<what>_token_f1``: the mean token F1 between the two outputs (the overlap of their token
  multisets, as extractive QA scores answers), 1.0 for identical outputs;
- ``<what>s``: each input's output text.

A multilingual Whisper starts from its start token alone and picks its language greedily, as
transformers' ``generate`` detects it; other speech models get their fixed transcribe prompt.
Timing is ``run_seq2seq_cases`` (encoder latency, time to first token, tokens/s) as for every
encoder-decoder.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from edgekit.benchmarks.measures import reference_worker

CAPTION_TOKENS = 32
EVAL_TEXTS = 64
"""Texts of --eval-data a text encoder-decoder answers (each one a full greedy decode on every backend)."""


OUTPUT_KINDS = {"pixel_values": "caption", "input_features": "transcript", "input_ids": "output"}
"""What an encoder-decoder writes, by what its encoder reads; its quality keys are ``<what>_exact``,
``<what>_token_f1`` and ``<what>s``."""


def output_kind(manifest: dict) -> str:
    """What an encoder-decoder writes: a caption (pixels in), a transcript (audio features in) or an output (text in)."""
    encoder_input = manifest.get("export", {}).get("seq2seq", {}).get("encoder_input")
    return OUTPUT_KINDS.get(encoder_input, "output")


def quality_columns(kind: str) -> tuple[tuple[str, str], ...]:
    return (
        ("artifact", "artifact"),
        ("backend", "backend"),
        (f"{kind}_exact", f"{kind}s identical to fp32"),
        (f"{kind}_token_f1", "token F1 vs fp32"),
    )


def is_captioner(manifest: dict) -> bool:
    export = manifest.get("export", {})
    return (
        export.get("task") == "seq2seq" and export.get("seq2seq", {}).get("encoder_input") == "pixel_values"
    )


def token_f1(got: list[int], expected: list[int]) -> float:
    """F1 of the overlap of two token multisets (1.0 when both are empty)."""
    if not got and not expected:
        return 1.0
    common = sum((Counter(got) & Counter(expected)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(expected)
    return 2 * precision * recall / (precision + recall)


def _eval_inputs(cfg, artifact, export: dict, tokenizer) -> tuple[list[str], list[dict], list[list[int]]]:
    """Names, encoder feeds and decoder prompts of the --eval-data inputs, made for ``artifact``."""
    start = int(export["decoder_start_token_id"])
    encoder_input = export["seq2seq"]["encoder_input"]
    if encoder_input == "pixel_values":
        from edgekit.calibration.images import ImagePreprocessor, image_files, open_image
        from edgekit.runtimes.seq2seq import image_encoder_feed

        pre = ImagePreprocessor.from_model(artifact)
        files = image_files(cfg.eval_data)
        feeds = [
            image_encoder_feed(export, tokenizer, pre(open_image(f, "--eval-data"))[None]) for f in files
        ]
        return [f.name for f in files], feeds, [[start]] * len(feeds)
    if encoder_input == "input_features":
        from edgekit.audio import read_wav, sampling_rate
        from edgekit.calibration.audio import require_audio
        from edgekit.runtimes.speech import SpeechPrompt, audio_features

        files = require_audio(cfg.eval_data, "--eval-data")
        rate = sampling_rate(artifact)
        feeds = [audio_features(artifact, read_wav(f, rate)) for f in files]
        prompter = SpeechPrompt.from_artifact(artifact, start)
        prompt = [start] if prompter.languages else prompter.tokens(None)
        return [f.name for f in files], feeds, [prompt] * len(feeds)
    from edgekit.calibration.text import load_texts

    texts = load_texts(cfg.eval_data, encoding=cfg.encoding)[:EVAL_TEXTS]
    feeds = []
    for text in texts:
        encoded = tokenizer([text], truncation=True, max_length=max(cfg.seq_lens), return_tensors="np")
        feed = {"input_ids": np.asarray(encoded["input_ids"], dtype=np.int64)}
        if export["seq2seq"].get("encoder_mask"):
            feed["attention_mask"] = np.asarray(encoded["attention_mask"], dtype=np.int64)
        feeds.append(feed)
    return [f"text {i + 1}" for i in range(len(texts))], feeds, [[start]] * len(feeds)


def caption_quality(cfg, workers, loaded, tokenizers, progress, task, verbose) -> list[dict[str, Any]]:
    """One quality row per encoder-decoder worker: its outputs for the eval inputs against the reference's."""
    manifests = dict(loaded)
    feeds, prompts, names, tokens = {}, {}, [], {}
    for artifact, manifest in loaded:
        names, feeds[artifact], prompts[artifact] = _eval_inputs(
            cfg, artifact, manifest["export"], tokenizers.get(artifact)
        )
    kind = output_kind(loaded[0][1])
    if progress:
        progress.update(task, description=f"bench: {kind}s of {len(names)} inputs")
    for w in workers:
        export = manifests[w.artifact]["export"]
        limit = int(export.get("max_length") or 1 << 30) - max(len(p) for p in prompts[w.artifact])
        tokens[id(w)] = w.ask(
            "caption",
            {
                "feeds": feeds[w.artifact],
                "prompts": prompts[w.artifact],
                "eos": list(export.get("eos_token_ids") or ()),
                "max_new_tokens": min(CAPTION_TOKENS, limit),
            },
            verbose,
        )
    rows = []
    for w in workers:
        ref = reference_worker(w, workers)
        tokenizer = tokenizers.get(w.artifact)
        row: dict[str, Any] = {"artifact": w.name, "backend": w.backend, "inputs": len(names)}
        if kind == "caption":
            row["images"] = len(names)
        if ref is not None:
            pairs = list(zip(tokens[id(w)], tokens[id(ref)]))
            row[f"{kind}_exact"] = float(np.mean([got == expected for got, expected in pairs]))
            row[f"{kind}_token_f1"] = float(np.mean([token_f1(got, expected) for got, expected in pairs]))
        if tokenizer is not None:
            row[f"{kind}s"] = {
                n: tokenizer.decode(t, skip_special_tokens=True).strip() for n, t in zip(names, tokens[id(w)])
            }
        rows.append(row)
    return rows
