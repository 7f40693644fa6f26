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

``--student`` also distils the tuned model into a student with half the layers in each tower
(text 3 of 6, vision 2 of 4: ``edgekit distill --task image-text --student-layers 3
--student-vision-layers 2``, the teacher's image-to-text and text-to-image similarities as soft
targets plus the student's own contrastive loss) and benches its fp32 ONNX beside the teacher's:
its zero-shot accuracy as a share of the teacher's, and each tower's speed-up over the teacher's
on ONNX Runtime. Targets: >= 95% of the teacher's accuracy, >= 1.8x faster.
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


def _image_text(model: Path, train: Path, out: Path, steps: int, **options) -> Path:
    """``edgekit distill --task image-text`` on the digit pairs, batch 32, 16-token captions."""
    from edgekit.compress.distill.config import DistillConfig
    from edgekit.compress.distill.train import distill

    cfg = DistillConfig(
        teacher=model,
        data=train,
        out=out,
        task="image-text",
        batch_size=32,
        max_steps=steps,
        eval_fraction=0.0,
        save_every=max(steps, 1),
        seq_len=16,
        **options,
    )
    return distill(cfg, quiet=True)


def tune(model: Path, train: Path, out: Path, steps: int) -> Path:
    """The vision tower and both projections trained contrastively against the locked MiniLM."""
    # every MiniLM layer: nothing is cut, the text tower is locked
    return _image_text(
        model, train, out, steps, student_layers=6, a1=0.0, a2=1.0, freeze=("text_model.*",), lr=1e-3
    )


def distil_half(teacher: Path, train: Path, out: Path, steps: int) -> Path:
    """A student with half the layers of each tower of the tuned ``teacher``, distilled on the same pairs."""
    return _image_text(
        teacher, train, out, steps, student_layers=3, student_vision_layers=2, a1=1.0, a2=1.0, lr=3e-4
    )


def student_summary(result: dict) -> dict:
    """The student's zero-shot accuracy as a share of the teacher's, and each tower's ORT speed-up."""
    acc = {q["artifact"]: q.get("zero_shot_accuracy") for q in result["quality"] if q["backend"] == "ort"}
    p50 = {
        (r["artifact"], r["tower"], r["batch"]): r["p50_ms"]
        for r in result["rows"]
        if r["backend"] == "ort" and "p50_ms" in r
    }
    speedups = {
        f"{tower} batch {batch}": p50[("fp32", tower, batch)] / ms
        for (name, tower, batch), ms in p50.items()
        if name == "student-fp32" and ("fp32", tower, batch) in p50
    }
    share = acc["student-fp32"] / acc["fp32"] if acc.get("fp32") else None
    return {
        "teacher_accuracy_ort": acc.get("fp32"),
        "student_accuracy_ort": acc.get("student-fp32"),
        "share_of_teacher": share,
        "speedup_vs_teacher_ort": speedups,
        "met": share is not None and share >= 0.95 and min(speedups.values(), default=0) >= 1.8,
    }


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
    ap.add_argument("--student", action="store_true", help="also distil a half-depth student and bench it")
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
        if args.student:
            from edgekit.export import ExportConfig, export_model

            half = distil_half(student, train, root / "half", args.steps)
            artifacts.append(export_model(ExportConfig(model=half, out=root / "student-fp32")))
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
    if args.student:
        summary["student"] = student_summary(result)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
