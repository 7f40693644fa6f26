"""Benchmark: a ViT-GPT2 image captioner on ONNX Runtime and OpenVINO, fp32 and INT8, against
PyTorch fp32 on real photos, in one run.

    python -m edgekit.benchmarks.captioner_int8 [--repeat 6] [--decoder-layers 12] [--out DIR]

No captioner weights install offline here (ASSETS.md), so the model is ViT-GPT2's shape (how the
common ViT-GPT2 captioners are built: ViT-base/16 at 224x224, 12 layers of 768, joined by
cross-attention to GPT-2 small, 12 layers of 768) with seeded random weights, the packaged
MiniLM's WordPiece vocabulary and an LM head scaled up so greedy decoding makes firm choices. The
photos are real (scikit-image's, offline); INT8 calibrates the vision encoder on them (static
activations) and makes the decoder weight-only int8. Speed does not depend on the weights; the
captions do, so caption agreement here says how far quantization moves a random model's argmax,
not how a trained captioner reads a photo.

Rows (``edgekit bench``): encoder latency (one photo), time to first token, decode tokens/s, and
with ``--eval-data`` (the photos) each variant's greedy captions against PyTorch fp32's (share
identical, token F1).

Target: the INT8 vision encoder >= 2.5x PyTorch fp32's encoder, with identical greedy captions
on the photos (for a trained model).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.artifacts import cpu_info

TARGET = 2.5
PHOTOS = ("chelsea", "coffee", "astronaut", "rocket", "cat", "camera", "coins")


def save_captioner(
    folder: Path, encoder: Any, decoder: Callable[[int, dict], Any], peaked: float = 0.0, seed: int = 0
) -> Any:
    """A ``VisionEncoderDecoderModel`` of ``encoder`` (a vision config) and ``decoder(vocab_size,
    special_ids)`` (a text config, given cross-attention here) with seeded random weights and the
    packaged MiniLM's WordPiece tokenizer, saved to ``folder``; the model. ``peaked`` > 0 unties and
    scales the LM head (the EOS row 1.6x more) so greedy and beam decoding make firm choices."""
    import torch
    import transformers

    from edgekit.assets import MINILM

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(MINILM.path()))
    tokenizer.save_pretrained(str(folder))
    ids = {
        "bos_token_id": tokenizer.cls_token_id,
        "eos_token_id": tokenizer.sep_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    text = decoder(len(tokenizer), ids)
    text.is_decoder, text.add_cross_attention, text.tie_word_embeddings = True, True, not peaked
    config = transformers.VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, text)
    config.decoder_start_token_id = tokenizer.cls_token_id
    config.pad_token_id, config.eos_token_id = tokenizer.pad_token_id, tokenizer.sep_token_id
    torch.manual_seed(seed)
    model = transformers.VisionEncoderDecoderModel(config=config).eval()
    if peaked:
        with torch.no_grad():
            head = model.decoder.get_output_embeddings().weight
            head.mul_(peaked)
            head[tokenizer.sep_token_id] *= 1.6
    generation = model.generation_config
    generation.decoder_start_token_id, generation.eos_token_id = ids["bos_token_id"], ids["eos_token_id"]
    generation.pad_token_id = ids["pad_token_id"]
    model.save_pretrained(str(folder))
    return model


def make_vit_gpt2(folder: Path, decoder_layers: int, peaked: float = 8.0) -> Path:
    """ViT-base/16 + GPT-2 small with cross-attention, seeded random weights, a scaled LM head."""
    import transformers

    def gpt2(vocab_size: int, ids: dict) -> Any:
        return transformers.GPT2Config(n_layer=decoder_layers, vocab_size=vocab_size, n_positions=128, **ids)

    save_captioner(folder, transformers.ViTConfig(), gpt2, peaked)
    transformers.ViTImageProcessor(size={"height": 224, "width": 224}).save_pretrained(str(folder))
    return folder


def write_photos(folder: Path) -> Path:
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True)
    for name in PHOTOS:
        image = getattr(data, name)()
        Image.fromarray(image).convert("RGB").save(folder / f"{name}.png")
    return folder


def summary(result: dict) -> dict:
    """Encoder speed-up over PyTorch, decode tokens/s and caption agreement, per artifact/backend."""
    rows = {f"{r['artifact']}/{r['backend']}": r for r in result["rows"]}
    torch_row = next(r for r in result["rows"] if r["backend"] == "torch")
    quality = {f"{q['artifact']}/{q['backend']}": q for q in result.get("quality", [])}
    report = {
        "cpu": cpu_info(),
        "encoder_ms": {k: round(r["encoder_ms"], 1) for k, r in rows.items()},
        "encoder_speedup_vs_torch": {
            k: round(torch_row["encoder_ms"] / r["encoder_ms"], 2)
            for k, r in rows.items()
            if r is not torch_row
        },
        "tokens_per_s": {k: round(r["tokens_per_s"], 1) for k, r in rows.items()},
        "captions_identical_to_fp32": {k: q.get("caption_exact") for k, q in quality.items()},
        "caption_token_f1": {k: q.get("caption_token_f1") for k, q in quality.items()},
    }
    int8 = {k: v for k, v in report["encoder_speedup_vs_torch"].items() if "int8" in k}
    identical = all(report["captions_identical_to_fp32"].get(k) == 1.0 for k in int8)
    report["int8_target"] = {
        "encoder_speedup": TARGET,
        "speed_met": bool(int8) and all(v >= TARGET for v in int8.values()),
        "captions_identical": identical,
    }
    return report


def _optimum(args, model: Path, photos: Path, root: Path) -> dict:
    """Optimum's ORTModelForVision2Seq on the same model and photos (prepared by the same
    preprocessor), 2 threads, after the bench run (its own process, not interleaved)."""
    import numpy as np

    from edgekit.benchmarks.caption_bench import CAPTION_TOKENS
    from edgekit.benchmarks.peers import optimum_vision2seq
    from edgekit.calibration.images import ImagePreprocessor, image_files, open_image

    pre = ImagePreprocessor.from_model(model)
    pixels = root / "pixels.npy"
    np.save(pixels, np.stack([pre(open_image(f)) for f in image_files(photos)]))
    return optimum_vision2seq(
        args.optimum_python, model, root / "optimum", pixels, args.new_tokens, CAPTION_TOKENS, args.repeat, 2
    )


def _peer_summary(peer: dict, result: dict) -> dict:
    """The peer's figures beside edgekit's: encoder speed-up over PyTorch fp32 from this run's torch
    row, decode tokens/s, and its captions against PyTorch fp32's."""
    torch_row = next(r for r in result["rows"] if r["backend"] == "torch")
    reference = next(q for q in result["quality"] if q["backend"] == "torch")["captions"]
    same = [a == b for a, b in zip(peer["captions"], reference.values())]
    return {
        "tool": peer["tool"],
        "encoder_ms": round(peer["encoder_ms"], 1),
        "encoder_speedup_vs_torch": round(torch_row["encoder_ms"] / peer["encoder_ms"], 2),
        "tokens_per_s": round(peer["tokens_per_s"], 1),
        "captions_identical_to_fp32": sum(same) / len(same),
    }


def main(argv: list[str] | None = None) -> dict:
    from edgekit.benchmarks.harness import BenchConfig, bench
    from edgekit.benchmarks.measures import export_variants
    from edgekit.benchmarks.report import print_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=6)
    ap.add_argument("--decoder-layers", type=int, default=12, help="GPT-2 layers (12: GPT-2 small's)")
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--optimum-python",
        default=None,
        help="python of a venv with optimum[onnxruntime]: times ORTModelForVision2Seq too",
    )
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = make_vit_gpt2(root / "vit-gpt2", args.decoder_layers)
        photos = write_photos(root / "photos")
        artifacts = export_variants(model, root, {"calib": photos})
        cfg = BenchConfig(
            artifacts=tuple(artifacts), backends=("torch", "ort", "openvino"), repeat=args.repeat,
            warmup=1, rounds=args.repeat, new_tokens=args.new_tokens, contexts=(16,), eval_data=photos,
            out=args.out, overwrite=True,
        )  # fmt: skip
        result = bench(cfg)
        peer = _optimum(args, model, photos, root) if args.optimum_python else None
    print_table(result)
    report = summary(result)
    if peer is not None:
        report["peer"] = _peer_summary(peer, result)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
