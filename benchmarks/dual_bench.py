"""``edgekit bench`` for image-text artifacts (CLIP family): each tower timed on its own, and
quality on image-text pairs against the fp32 PyTorch reference of the same source.

Latency: the text tower at every ``--batch`` x ``--seq-len`` (real texts padded to exactly that
length), the vision tower at every ``--batch`` (images at the size the preprocessor gives).

Quality (``--eval-data`` pairs, ``calibration/pairs.py``), per artifact x backend:

- ``image_cosine`` / ``text_cosine``: mean cosine of each tower's embeddings to the reference's;
- ``i2t_r1_vs_fp32`` / ``i2t_r5_vs_fp32``: share of images whose best caption under the reference
  is within this run's top 1 / top 5 captions (top 1 is the zero-shot top-1 agreement with the
  captions as labels); ``t2i_*`` the same from texts to images;
- ``i2t_r1`` / ``i2t_r5``: recall of each image's own caption (the ground truth);
- with labels: ``zero_shot_accuracy`` (the label names are the candidate texts), and
  ``zero_shot_agreement`` with the reference's labels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edgekit.benchmarks.measures import case_rows, reference_worker

SYNTHETIC_IMAGES = 8


def timing_images_description(cfg) -> str:
    return (
        f"the images of {cfg.eval_data}"
        if cfg.eval_data is not None
        else "seeded random 256x256 images (seed 0)"
    )


def _timing_images(cfg) -> list[Any]:
    """Images for the vision tower's timing: the eval pairs' images, else seeded random pixels
    (latency of a dense tower does not depend on what the pixels show)."""
    from PIL import Image

    if cfg.eval_data is not None:
        from edgekit.calibration.pairs import load_pairs

        return load_pairs(cfg.eval_data, cfg.encoding, limit=max(cfg.batches)).images
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)) for _ in range(SYNTHETIC_IMAGES)
    ]


def tower_cases(cfg, loaded, tokenizers, texts) -> list[tuple[str, int, int | None, dict]]:
    """(tower, batch, seq_len, {artifact: feeds}) for every case timed."""
    from edgekit.calibration.images import ImagePreprocessor
    from edgekit.calibration.text import tokenize_fixed
    from edgekit.runtimes.dual import image_feeds, tower_text_inputs

    images = _timing_images(cfg)
    preprocess = {p: ImagePreprocessor.from_model(p) for p, _ in loaded}
    cases = []
    for batch in cfg.batches:
        for seq in cfg.seq_lens:
            feeds = {
                p: tokenize_fixed(tokenizers[p], texts, batch, seq, tower_text_inputs(m)) for p, m in loaded
            }
            cases.append(("text", batch, seq, feeds))
    for batch in cfg.batches:
        chosen = [images[i % len(images)] for i in range(batch)]
        feeds = {p: image_feeds(preprocess[p], chosen, batch)[0] for p, _ in loaded}
        cases.append(("vision", batch, None, feeds))
    return cases


def run_dual_cases(cfg, workers, loaded, tokenizers, texts, rounds, progress, task, verbose) -> list[dict]:
    """Per tower and case: the same inputs to every worker, then interleaved timed blocks."""
    rows = []
    per_block = max(1, math.ceil(cfg.repeat / rounds))
    for tower, batch, seq, inputs in tower_cases(cfg, loaded, tokenizers, texts):
        if progress:
            progress.update(
                task, description=f"bench: {tower} tower, batch {batch}" + (f", seq {seq}" if seq else "")
            )
        rows += case_rows(
            workers,
            lambda w: {"tower": tower, "inputs": inputs[w.artifact], "warmup": cfg.warmup},
            {"tower": tower, "batch": batch, "seq_len": seq},
            per_block,
            rounds,
            verbose,
            progress and (lambda: progress.advance(task)),
            model_bytes=lambda w: w.info["tower_bytes"][tower],
        )
    return rows


def cases_count(cfg) -> int:
    return len(cfg.batches) * len(cfg.seq_lens) + len(cfg.batches)


def _embeddings(cfg, workers, loaded, tokenizers, pairs, label_names, verbose) -> dict[int, dict]:
    """Each worker's image, caption and label embeddings of the pairs."""
    from edgekit.calibration.images import ImagePreprocessor
    from edgekit.runtimes.dual import image_feeds, text_feeds, tower_text_inputs

    manifests = dict(loaded)
    embeds: dict[int, dict] = {}
    for w in workers:
        export = manifests[w.artifact]["export"]

        def texts_of(texts, w=w, export=export):
            feeds = text_feeds(
                tokenizers[w.artifact],
                texts,
                tower_text_inputs(manifests[w.artifact]),
                int(export["max_length"]),
                export.get("text_padding", "longest"),
            )
            arg = {"tower": "text", "feeds": feeds, "output": "text_embeds"}
            return np.concatenate(w.ask("embed", arg, verbose)).astype(np.float64)

        feeds = image_feeds(ImagePreprocessor.from_model(w.artifact), pairs.images)
        arg = {"tower": "vision", "feeds": feeds, "output": "image_embeds"}
        embeds[id(w)] = {
            "image": np.concatenate(w.ask("embed", arg, verbose)).astype(np.float64),
            "text": texts_of(pairs.texts),
            "labels": texts_of(label_names) if label_names else None,
        }
    return embeds


def dual_quality(cfg, workers, loaded, tokenizers, progress, task, verbose) -> list[dict]:
    from edgekit.calibration.pairs import load_pairs
    from edgekit.numerics import retrieval_scores

    pairs = load_pairs(cfg.eval_data, cfg.encoding)
    label_names = sorted(set(pairs.labels)) if pairs.labels else []
    if progress:
        progress.update(task, description=f"bench: quality on {len(pairs)} image-text pairs")
    embeds = _embeddings(cfg, workers, loaded, tokenizers, pairs, label_names, verbose)
    result = []
    for w in workers:
        e = embeds[id(w)]
        ref = reference_worker(w, workers)
        r = embeds[id(ref)] if ref is not None else None
        row: dict[str, Any] = {"artifact": w.name, "backend": w.backend, "pairs": len(pairs)}
        row.update(retrieval_scores(e["image"], e["text"], *((r["image"], r["text"]) if r else ())))
        if label_names:
            predicted = (e["image"] @ e["labels"].T).argmax(1)
            truth = np.asarray([label_names.index(label) for label in pairs.labels])
            row["zero_shot_accuracy"] = float(np.mean(predicted == truth))
            if r is not None:
                row["zero_shot_agreement"] = float(
                    np.mean(predicted == (r["image"] @ r["labels"].T).argmax(1))
                )
        result.append(row)
    return result


QUALITY_COLUMNS = (
    ("artifact", "artifact"),
    ("backend", "backend"),
    ("image_cosine", "image cos"),
    ("text_cosine", "text cos"),
    ("i2t_r1_vs_fp32", "top-1 agree"),
    ("i2t_r5_vs_fp32", "i2t R@5 vs fp32"),
    ("t2i_r1_vs_fp32", "t2i R@1 vs fp32"),
    ("t2i_r5_vs_fp32", "t2i R@5 vs fp32"),
    ("i2t_r1", "i2t R@1"),
    ("i2t_r5", "i2t R@5"),
    ("t2i_r1", "t2i R@1"),
    ("zero_shot_accuracy", "zero-shot acc"),
    ("zero_shot_agreement", "zero-shot agree"),
)
