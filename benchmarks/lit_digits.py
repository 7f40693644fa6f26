"""Locked-tower tuning on real weights and real images, end to end: a vision-text dual encoder
whose text tower is the packaged all-MiniLM-L6-v2 (locked) and whose vision tower is a small ViT
trained from scratch on scikit-learn's handwritten digits with captions, then zero-shot
classification of held-out digits on PyTorch, ONNX Runtime fp32/INT8 and OpenVINO INT8.

    python -m edgekit.benchmarks.lit_digits [--steps 300] [--out DIR]

This is LiT with the towers' roles swapped, because the only real image-text weights here are a
text encoder's (ASSETS.md has no ViT or CLIP): the locked tower's embedding space is the target,
and contrastive training (``edgekit distill --task image-text --a1 0 --a2 1 --freeze
'text_model.*'``) aligns the new tower and both projections to it. Zero-shot labels are the ten
captions "a handwritten zero" .. "a handwritten nine"; chance is 0.1.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

WORDS = "zero one two three four five six seven eight nine".split()
TRAIN = 1400
"""Digits 0..TRAIN-1 train the vision tower; the remaining 397 are held out for zero-shot."""


def write_digits(folder: Path) -> tuple[Path, Path, Path]:
    """The digits as 32x32 RGB images; train pairs, held-out pairs (with labels), and the images."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = folder / "digits"
    images.mkdir(parents=True)
    train, held = [], []
    for i, (pixels, target) in enumerate(zip(digits.images, digits.target)):
        Image.fromarray((pixels * 16).clip(0, 255).astype(np.uint8)).resize((32, 32)).convert("RGB").save(
            images / f"{i}.png"
        )
        caption = (
            f"a handwritten {WORDS[target]}"  # the label is its caption: zero-shot candidates are captions
        )
        record = {"image": f"digits/{i}.png", "text": caption, "label": caption}
        (train if i < TRAIN else held).append(json.dumps(record))
    for name, lines in (("train.jsonl", train), ("held.jsonl", held)):
        (folder / name).write_text("\n".join(lines) + "\n")
    return folder / "train.jsonl", folder / "held.jsonl", images


def make_model(folder: Path, seed: int = 0) -> Path:
    """MiniLM (real weights) as the text tower, a seeded small ViT as the vision tower."""
    import torch
    import transformers

    from edgekit.assets import MINILM

    torch.manual_seed(seed)
    vision = transformers.ViTModel(
        transformers.ViTConfig(
            image_size=32,
            patch_size=4,
            num_channels=3,
            hidden_size=96,
            num_hidden_layers=4,
            num_attention_heads=4,
            intermediate_size=192,
        )
    )
    text = transformers.BertModel.from_pretrained(str(MINILM.path()))
    model = transformers.VisionTextDualEncoderModel(vision_model=vision, text_model=text)
    model.save_pretrained(str(folder))
    transformers.AutoTokenizer.from_pretrained(str(MINILM.path())).save_pretrained(str(folder))
    processor = {
        "do_resize": True,
        "size": {"height": 32, "width": 32},
        "resample": 2,
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


def tune(model: Path, train: Path, out: Path, steps: int) -> Path:
    from edgekit.compress.distill.config import DistillConfig
    from edgekit.compress.distill.train import distill

    cfg = DistillConfig(
        teacher=model,
        data=train,
        out=out,
        task="image-text",
        student_layers=6,  # every MiniLM layer: nothing is cut, the text tower is locked
        a1=0.0,
        a2=1.0,
        freeze=("text_model.*",),
        batch_size=32,
        max_steps=steps,
        lr=1e-3,
        eval_fraction=0.0,
        save_every=max(steps, 1),
        seq_len=16,
    )
    return distill(cfg, quiet=True)


def exports(student: Path, calib_images: Path, calib_text: Path, root: Path) -> list[Path]:
    from edgekit.export import ExportConfig, export_model

    plan = (("fp32", "onnx", "fp32"), ("ort-int8", "ort", "int8"), ("ov-int8", "openvino", "int8"))
    outs = []
    for name, target, precision in plan:
        calib = (
            {"calib": calib_images, "calib_text": calib_text, "calib_size": 64} if precision == "int8" else {}
        )
        outs.append(
            export_model(
                ExportConfig(model=student, out=root / name, target=target, precision=precision, **calib)
            )
        )
    return outs


def main(argv: list[str] | None = None) -> dict:
    from edgekit.artifacts import cpu_info
    from edgekit.benchmarks.harness import BenchConfig, bench
    from edgekit.benchmarks.report import print_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        train, held, images = write_digits(root / "data")
        calib = root / "calib"
        calib.mkdir()
        for i in range(64):  # training images only: held-out digits never calibrate
            (calib / f"{i}.png").write_bytes((images / f"{i}.png").read_bytes())
        student = tune(make_model(root / "model"), train, root / "student", args.steps)
        artifacts = exports(student, calib, train, root)
        cfg = BenchConfig(
            artifacts=tuple(artifacts),
            backends=("torch", "ort", "openvino"),
            batches=(1, 8),
            seq_lens=(8,),
            repeat=args.repeat,
            eval_data=held,
            out=args.out,
            overwrite=True,
        )
        result = bench(cfg)
    print_table(result)
    summary = {
        "cpu": cpu_info()["model"],
        "steps": args.steps,
        "zero_shot_accuracy": {
            f"{q['artifact']}/{q['backend']}": q.get("zero_shot_accuracy") for q in result["quality"]
        },
        "agreement_with_fp32": {
            f"{q['artifact']}/{q['backend']}": q.get("zero_shot_agreement") for q in result["quality"]
        },
    }
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
