"""Caption agreement of image captioners (encoder-decoders whose encoder reads ``pixel_values``)
against the fp32 PyTorch reference of the same source, on the photos of ``--eval-data``.

Each worker captions every photo (prepared by its artifact's own preprocessor) greedily, up to
``CAPTION_TOKENS`` new tokens or EOS; the reference is the PyTorch worker of the same source. Per
artifact x backend:

- ``caption_exact``: the share of photos whose caption is token for token the reference's;
- ``caption_token_f1``: the mean token F1 between the two captions (the overlap of their token
  multisets, as extractive QA scores answers), 1.0 for identical captions;
- ``captions``: each photo's caption text.

Timing is ``run_seq2seq_cases`` (encoder latency, time to first token, tokens/s) as for every
encoder-decoder.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from edgekit.benchmarks.measures import reference_worker

CAPTION_TOKENS = 32

CAPTION_COLUMNS = (
    ("artifact", "artifact"),
    ("backend", "backend"),
    ("caption_exact", "captions identical to fp32"),
    ("caption_token_f1", "token F1 vs fp32"),
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


def _photo_feeds(cfg, artifact, export: dict, tokenizer) -> tuple[list[str], list[dict[str, np.ndarray]]]:
    from edgekit.calibration.images import ImagePreprocessor, image_files, open_image
    from edgekit.runtimes.seq2seq import image_encoder_feed

    pre = ImagePreprocessor.from_model(artifact)
    files = image_files(cfg.eval_data)
    feeds = [image_encoder_feed(export, tokenizer, pre(open_image(f, "--eval-data"))[None]) for f in files]
    return [f.name for f in files], feeds


def caption_quality(cfg, workers, loaded, tokenizers, progress, task, verbose) -> list[dict[str, Any]]:
    """One quality row per captioner worker: its captions of the eval photos against the reference's."""
    manifests = dict(loaded)
    feeds, names, tokens = {}, [], {}
    for artifact, manifest in loaded:
        names, feeds[artifact] = _photo_feeds(cfg, artifact, manifest["export"], tokenizers.get(artifact))
    if progress:
        progress.update(task, description=f"bench: captioning {len(names)} photos")
    for w in workers:
        export = manifests[w.artifact]["export"]
        limit = int(export.get("max_length") or 1 << 30) - 1
        tokens[id(w)] = w.ask(
            "caption",
            {
                "feeds": feeds[w.artifact],
                "start": int(export["decoder_start_token_id"]),
                "eos": list(export.get("eos_token_ids") or ()),
                "max_new_tokens": min(CAPTION_TOKENS, limit),
            },
            verbose,
        )
    rows = []
    for w in workers:
        ref = reference_worker(w, workers)
        tokenizer = tokenizers.get(w.artifact)
        row: dict[str, Any] = {"artifact": w.name, "backend": w.backend, "images": len(names)}
        if ref is not None:
            pairs = list(zip(tokens[id(w)], tokens[id(ref)]))
            row["caption_exact"] = float(np.mean([got == expected for got, expected in pairs]))
            row["caption_token_f1"] = float(np.mean([token_f1(got, expected) for got, expected in pairs]))
        if tokenizer is not None:
            row["captions"] = {
                n: tokenizer.decode(t, skip_special_tokens=True).strip() for n, t in zip(names, tokens[id(w)])
            }
        rows.append(row)
    return rows
