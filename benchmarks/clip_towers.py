"""Benchmark: the two towers of a CLIP ViT-B/32 on ONNX Runtime and OpenVINO, fp32 and INT8,
against PyTorch fp32, in one run.

    python -m edgekit.benchmarks.clip_towers [--repeat 30] [--out DIR] [--layers 12]

No CLIP weights install offline here (ASSETS.md), so the model is CLIP ViT-B/32's shape
(``CLIPConfig()``: text 12 x 512, vision 12 x 768, 224 px, patch 32, 151M parameters) with
seeded random weights and a real WordPiece tokenizer over edgekit's sample text. Speed does not
depend on the weights; agreement does, so the INT8 figures here say how far quantization moves
a random model's rankings, not a trained one's.

Rows (``edgekit bench``): each tower on torch, ORT fp32 and INT8, OpenVINO fp32 and INT8 (INT8
calibrated on real photos for the vision tower and captions for the text tower), batch 1 and 8;
the text tower at 16 tokens. Quality on real image-text pairs (scikit-image photos and
scikit-learn digits with captions): zero-shot top-1 agreement and recall@5 against fp32's
ranking, embedding cosine per tower.

Targets (vision tower, batch 8): INT8 >= 2.5x PyTorch on both runtimes, with top-1 agreement
>= 0.99 on a trained model (reported here on random weights, see above).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from edgekit.artifacts import cpu_info

VISION_TARGET = 2.5
PHOTOS = {
    "astronaut": "an astronaut in a white space suit",
    "camera": "a man behind a camera on a tripod",
    "cat": "a small cat looking up",
    "chelsea": "a tabby cat with orange fur",
    "coffee": "a cup of coffee on a saucer",
    "coins": "old coins laid out in rows",
    "horse": "the silhouette of a running horse",
    "rocket": "a rocket on its launch pad",
    "hubble_deep_field": "galaxies in the deep sky",
    "moon": "the surface of the moon",
    "page": "a page of printed text",
    "clock": "a clock on a wall",
}
WORDS = "zero one two three four five six seven eight nine".split()


def write_pairs(folder: Path, digits: int = 20) -> tuple[Path, Path]:
    """Real photos and digits with captions, as a .jsonl of pairs; and the photos' folder."""
    import numpy as np
    from PIL import Image
    from skimage import data
    from sklearn.datasets import load_digits

    photos = folder / "photos"
    photos.mkdir(parents=True)
    lines = []
    for name, caption in PHOTOS.items():
        image = Image.fromarray(getattr(data, name)()).convert("RGB")
        image.save(photos / f"{name}.png")
        lines.append({"image": f"photos/{name}.png", "text": caption})
    sets = load_digits()
    for i in range(digits):
        pixels = (sets.images[i] * 16).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).resize((64, 64)).convert("RGB").save(photos / f"digit{i}.png")
        lines.append({"image": f"photos/digit{i}.png", "text": f"a handwritten {WORDS[sets.target[i]]}"})
    pairs = folder / "pairs.jsonl"
    pairs.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return pairs, photos


def make_clip(folder: Path, layers: int) -> Path:
    """CLIP ViT-B/32's shape, seeded random weights, the packaged MiniLM's WordPiece tokenizer
    (its [SEP] ends a caption, where CLIP's text tower pools), CLIP's preprocessing."""

    import torch
    import transformers

    from edgekit.assets import MINILM

    folder.mkdir(parents=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(MINILM.path()))
    tokenizer.save_pretrained(str(folder))
    config = transformers.CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "num_hidden_layers": layers,
            "eos_token_id": tokenizer.sep_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={"num_hidden_layers": layers},
    )
    torch.manual_seed(0)
    transformers.CLIPModel(config).eval().save_pretrained(str(folder))
    processor = {
        "do_resize": True, "size": {"shortest_edge": 224}, "resample": 3,
        "do_center_crop": True, "crop_size": {"height": 224, "width": 224},
        "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.4815, 0.4578, 0.4082], "image_std": [0.2686, 0.2613, 0.2758],
    }  # fmt: skip
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


def main(argv: list[str] | None = None) -> dict:
    from edgekit.benchmarks.harness import BenchConfig, bench
    from edgekit.benchmarks.measures import export_variants
    from edgekit.benchmarks.report import print_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--layers", type=int, default=12, help="layers per tower (12: ViT-B/32's)")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pairs, photos = write_pairs(root / "data")
        artifacts = export_variants(
            make_clip(root / "clip", args.layers), root, {"calib": photos, "calib_text": pairs}
        )
        cfg = BenchConfig(
            artifacts=tuple(artifacts), backends=("torch", "ort", "openvino"), batches=(1, 8),
            seq_lens=(16,), repeat=args.repeat, eval_data=pairs, out=args.out, overwrite=True,
        )  # fmt: skip
        result = bench(cfg)
    print_table(result)
    summary = {"cpu": cpu_info(), "vision_batch8": {}, "quality": {}}
    for row in result["rows"]:
        if row["tower"] == "vision" and row["batch"] == 8 and row["backend"] != "torch":
            summary["vision_batch8"][f"{row['artifact']}/{row['backend']}"] = round(
                row["speedup_vs_torch"], 2
            )
    for q in result["quality"]:
        summary["quality"][f"{q['artifact']}/{q['backend']}"] = {
            k: round(q[k], 4)
            for k in ("i2t_r1_vs_fp32", "i2t_r5_vs_fp32", "image_cosine", "text_cosine")
            if k in q
        }
    int8 = {k: v for k, v in summary["vision_batch8"].items() if "int8" in k}
    summary["vision_int8_target"] = {
        "speedup": VISION_TARGET,
        "met": all(v >= VISION_TARGET for v in int8.values()),
    }
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
