"""Image-text teachers in optimize: the text length their positions allow, and INT8 calibration
sets made from the training pairs when none are given (the images for the vision tower, the
captions for the text tower)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgekit.optimize.config import OptimizeConfig


def text_positions(config: dict) -> int | None:
    """The text tower's positions (CLIP: 77), from a dual encoder's config.json."""
    text = config.get("text_config") or {}
    return text.get("max_position_embeddings") or config.get("max_position_embeddings")


def fit_dual(cfg: OptimizeConfig, config: dict, stages_dir: Path) -> OptimizeConfig:
    """``cfg`` with text lengths within the text tower's positions and, for INT8 without --calib,
    calibration folders written once from ``data``'s pairs into ``stages/calib-<hash>/``."""
    limit = text_positions(config)
    if limit:
        cfg = dataclasses.replace(
            cfg, seq_len=min(cfg.seq_len, limit), bench_seq_len=min(cfg.bench_seq_len, limit)
        )
    if "int8" not in cfg.precisions or cfg.calib is not None or cfg.data is None:
        return cfg
    images, captions = calibration_from_pairs(cfg, stages_dir)
    return dataclasses.replace(cfg, calib=images, calib_text=captions)


def calibration_from_pairs(cfg: Any, stages_dir: Path) -> tuple[Path, Path]:
    """(a folder of the pairs' images, a file of their captions), each written once per data content."""
    import shutil
    import tempfile

    from edgekit.calibration.pairs import load_pairs
    from edgekit.optimize.plan import input_hash

    folder = stages_dir / f"calib-{input_hash(cfg.data)[:12]}"
    images, captions = folder / "images", folder / "captions.txt"
    if captions.is_file():
        return images, captions
    pairs = load_pairs(cfg.data, cfg.encoding, limit=cfg.calib_size)
    stages_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=stages_dir))
    try:
        (tmp / "images").mkdir()
        for i, image in enumerate(pairs.images):
            image.convert("RGB").save(tmp / "images" / f"{i:05d}.png")
        (tmp / "captions.txt").write_text("\n".join(" ".join(t.split()) for t in pairs.texts) + "\n")
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return images, captions
