"""A trained image captioner, end to end: a small ViT + GPT-2 captioner (``VisionEncoderDecoderModel``)
trained on scikit-learn's real handwritten digits with captions, then greedy captions of held-out
digits from PyTorch fp32, ONNX Runtime fp32 and INT8, and OpenVINO INT8.

    python -m edgekit.benchmarks.caption_digits [--steps 400] [--out DIR]

No trained captioner installs offline here (ASSETS.md), and a random-weight captioner's captions
sit on near-ties that any rounding flips, so caption agreement measured on one says little. This
model's captions are learned: "a thin handwritten seven" or "a bold handwritten seven", the digit
and how much ink it has (above or below the median of its digit in the training set), two visual
facts the decoder has to read from the image features. INT8 here is what ``--precision int8
--calib`` makes of a captioner: the vision encoder static INT8, calibrated on training digits
only; the decoder weight-only int8.

Reported, per artifact x backend: caption accuracy on the held-out digits (exact caption), the
share of captions identical to PyTorch fp32's and their token F1 (``bench --eval-data``), and
the bench's encoder latency and decode speed (a small model: the speed target is measured on
ViT-base + GPT-2 small by ``captioner_int8``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

WORDS = "zero one two three four five six seven eight nine".split()
TRAIN = 1400
"""Digits 0..TRAIN-1 train the captioner (and calibrate INT8); the remaining 397 are held out."""


def write_digits(folder: Path) -> tuple[list[tuple[Path, str]], Path]:
    """The digits as 32x32 RGB images with their captions; (image, caption) pairs in order, and the
    folder of held-out images (what bench captions)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    ink = digits.images.reshape(len(digits.images), -1).sum(1)
    medians = {d: float(np.median(ink[:TRAIN][digits.target[:TRAIN] == d])) for d in range(10)}
    train, held = folder / "train", folder / "held"
    train.mkdir(parents=True)
    held.mkdir()
    pairs = []
    for i, (pixels, target) in enumerate(zip(digits.images, digits.target)):
        path = (train if i < TRAIN else held) / f"{i}.png"
        Image.fromarray((pixels * 16).clip(0, 255).astype(np.uint8)).resize((32, 32)).convert("RGB").save(
            path
        )
        weight = "bold" if ink[i] > medians[int(target)] else "thin"
        pairs.append((path, f"a {weight} handwritten {WORDS[target]}"))
    return pairs, held


def make_captioner(folder: Path, seed: int = 0) -> Path:
    """A seeded small ViT (32x32, patches of 4) joined to a small GPT-2 with cross-attention."""
    import transformers

    from edgekit.benchmarks.captioner_int8 import save_captioner

    def gpt2(vocab_size: int, ids: dict):
        return transformers.GPT2Config(
            n_embd=96, n_layer=2, n_head=4, vocab_size=vocab_size, n_positions=32, **ids
        )

    vit = transformers.ViTConfig(
        image_size=32, patch_size=4, hidden_size=96, num_hidden_layers=3, num_attention_heads=4,
        intermediate_size=192,
    )  # fmt: skip
    save_captioner(folder, vit, gpt2, seed=seed)
    transformers.ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(folder))
    return folder


def train(model_dir: Path, pairs: list[tuple[Path, str]], steps: int, seed: int = 0, batch: int = 32) -> Path:
    """Teacher-forced captioning loss on the training pairs (AdamW, linear decay); saved in place."""
    import numpy as np
    import torch
    import transformers

    from edgekit.calibration.images import ImagePreprocessor, open_image

    torch.manual_seed(seed)
    model = transformers.VisionEncoderDecoderModel.from_pretrained(str(model_dir))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    pre = ImagePreprocessor.from_model(model_dir)
    pixels = torch.from_numpy(np.stack([pre(open_image(p)) for p, _ in pairs[:TRAIN]]))
    encoded = tokenizer([c for _, c in pairs[:TRAIN]], padding=True, return_tensors="pt")
    labels = encoded["input_ids"][:, 1:].clone()  # the decoder starts at [CLS]; it learns the words and [SEP]
    labels[encoded["attention_mask"][:, 1:] == 0] = -100
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 - s / steps)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        rows = torch.randint(0, len(pixels), (batch,), generator=generator)
        loss = model(pixel_values=pixels[rows], labels=labels[rows]).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval().save_pretrained(str(model_dir))
    return model_dir


def exports(model: Path, calib: Path, root: Path) -> list[Path]:
    from edgekit.benchmarks.measures import export_variants

    return export_variants(
        model,
        root,
        {"calib": calib, "calib_size": 64},
        (("ort-int8", "ort", "int8"), ("ov-int8", "openvino", "int8")),
    )


def accuracy(quality: list[dict], truth: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per artifact/backend, on the held-out digits: the share of captions equal to the true one,
    and the share that name the right digit (the ink word is the harder half: near its digit's
    median, bold and thin differ by a few pixels)."""

    def share(q: dict, same) -> float:
        return round(
            sum(same(q["captions"][name], caption) for name, caption in truth.items()) / len(truth), 4
        )

    return {
        f"{q['artifact']}/{q['backend']}": {
            "caption": share(q, lambda got, want: got == want),
            "digit": share(q, lambda got, want: got.split()[-1:] == want.split()[-1:]),
        }
        for q in quality
    }


def main(argv: list[str] | None = None) -> dict:
    from edgekit.artifacts import cpu_info
    from edgekit.benchmarks.harness import BenchConfig, bench
    from edgekit.benchmarks.report import print_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pairs, held = write_digits(root / "data")
        calib = root / "calib"
        calib.mkdir()
        for path, _ in pairs[:64]:  # training digits only: held-out digits never calibrate
            (calib / path.name).write_bytes(path.read_bytes())
        model = train(make_captioner(root / "captioner"), pairs, args.steps)
        artifacts = exports(model, calib, root)
        cfg = BenchConfig(
            artifacts=tuple(artifacts), backends=("torch", "ort", "openvino"), repeat=args.repeat,
            warmup=1, rounds=3, new_tokens=8, contexts=(4,), eval_data=held, out=args.out, overwrite=True,
        )  # fmt: skip
        result = bench(cfg)
    print_table(result)
    truth = {path.name: caption for path, caption in pairs[TRAIN:]}
    summary = {
        "cpu": cpu_info()["model"],
        "steps": args.steps,
        "held_out": len(truth),
        "caption_accuracy": accuracy(result["quality"], truth),
        "identical_to_fp32": {
            f"{q['artifact']}/{q['backend']}": q.get("caption_exact") for q in result["quality"]
        },
        "token_f1_vs_fp32": {
            f"{q['artifact']}/{q['backend']}": q.get("caption_token_f1") for q in result["quality"]
        },
        "encoder_ms": {f"{r['artifact']}/{r['backend']}": round(r["encoder_ms"], 2) for r in result["rows"]},
    }
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
