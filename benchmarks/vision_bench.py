"""``edgekit bench`` for vision encoders (ViT, DeiT: ``image-feature-extraction``): latency at every
``--batch`` on real images, and quality on a labelled image folder against the fp32 PyTorch
reference of the same source.

Timing images: the images of ``--eval-data`` (a folder; class subfolders give labels), else seeded
random 256x256 images (a dense encoder's latency does not depend on what the pixels show), each
prepared by the artifact's own preprocessor. One row per artifact, backend and batch, with the
outputs' agreement with the reference (max |diff|, mean cosine).

Quality (``--eval-data``), per artifact x backend: ``mean_cosine`` of the pooled image features
(``pooler_output``, else the mean of ``last_hidden_state``) to the reference's, and where the
folder has class subfolders ``accuracy``: 5-fold logistic-regression probe accuracy on those
features, and ``relative_accuracy`` to the reference's.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.benchmarks.measures import case_rows, reference_worker
from edgekit.numerics import masked_mean, row_cosines

SYNTHETIC_IMAGES = 8


def images_description(cfg) -> str:
    if cfg.eval_data is not None:
        return f"the images of {cfg.eval_data}"
    return f"{SYNTHETIC_IMAGES} seeded random 256x256 images (seed 0)"


def _timing_images(cfg) -> list[Any]:
    from PIL import Image

    if cfg.eval_data is not None:
        from edgekit.calibration.images import image_files, open_image

        return [open_image(f, "--eval-data") for f in image_files(cfg.eval_data)[: max(cfg.batches)]]
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)) for _ in range(SYNTHETIC_IMAGES)
    ]


def cases_count(cfg) -> int:
    return len(cfg.batches)


def run_vision_cases(cfg, workers, loaded, rounds, progress, task, verbose) -> list[dict[str, Any]]:
    """Per batch: the same images to every worker (each through its artifact's preprocessor),
    then interleaved timed blocks."""
    from edgekit.calibration.images import ImagePreprocessor

    images = _timing_images(cfg)
    preprocess = {p: ImagePreprocessor.from_model(p) for p, _ in loaded}
    per_block = max(1, math.ceil(cfg.repeat / rounds))
    rows = []
    for batch in cfg.batches:
        if progress:
            progress.update(task, description=f"bench: batch {batch} images")
        chosen = [images[i % len(images)] for i in range(batch)]
        feeds = {p: {"pixel_values": np.stack([pre(im) for im in chosen])} for p, pre in preprocess.items()}
        rows += case_rows(
            workers,
            lambda w: {"inputs": feeds[w.artifact], "warmup": cfg.warmup},
            {"batch": batch, "seq_len": None},
            per_block,
            rounds,
            verbose,
            progress and (lambda: progress.advance(task)),
        )
    return rows


def _feature_output(manifest: dict) -> str:
    names = [o["name"] for o in manifest["export"].get("outputs", [])]
    return "pooler_output" if "pooler_output" in names else "last_hidden_state"


def vision_quality(cfg, workers, loaded, progress, task, verbose) -> list[dict[str, Any]]:
    """Pooled features of every worker on the --eval-data images, against its source's PyTorch worker."""
    from edgekit.calibration.images import image_eval_feeds
    from edgekit.compress.quality import probe_accuracy

    manifests = dict(loaded)
    feeds = {p: image_eval_feeds(p, Path(cfg.eval_data)) for p in manifests}
    labels = next(iter(feeds.values()))[1]
    if progress:
        progress.update(
            task,
            description=f"bench: quality on {sum(len(f['pixel_values']) for f in next(iter(feeds.values()))[0])} images",
        )
    pooled: dict[int, np.ndarray] = {}
    for w in workers:
        output = _feature_output(manifests[w.artifact])
        outs = w.ask("embed", {"feeds": feeds[w.artifact][0], "output": output}, verbose)
        pooled[id(w)] = np.concatenate([o if o.ndim == 2 else masked_mean(o, None) for o in outs]).astype(
            np.float64
        )
    accuracy = {id(w): probe_accuracy(pooled[id(w)], labels, 0) for w in workers} if labels else {}
    result = []
    for w in workers:
        ref = reference_worker(w, workers)
        row: dict[str, Any] = {"artifact": w.name, "backend": w.backend, "images": len(pooled[id(w)])}
        if ref is not None:
            row["mean_cosine"] = float(row_cosines(pooled[id(w)], pooled[id(ref)]).mean())
        if accuracy:
            row["accuracy"] = accuracy[id(w)]
            base = accuracy[id(ref)] if ref is not None else None
            row["relative_accuracy"] = accuracy[id(w)] / base if base else None
        result.append(row)
    return result
