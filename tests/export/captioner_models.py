"""Tiny random image captioners as transformers builds them (``VisionEncoderDecoderModel``: a ViT
encoder joined to a text decoder with cross-attention, as ViT-GPT2 captioners and TrOCR are),
saved with the packaged MiniLM's WordPiece tokenizer and a ViT image processor config."""

from __future__ import annotations

import json
from pathlib import Path


def make_tiny_captioner(
    folder: Path, decoder: str = "gpt2", seed: int = 0, encoder_width: int = 32, peaked: float = 0.0
) -> Path:
    """``decoder``: ``gpt2`` or ``trocr``; an ``encoder_width`` other than the decoder's 32 adds
    the encoder-to-decoder projection (TrOCR-base has one). ``peaked`` > 0 unties and scales the
    LM head (the EOS row a bit more), so beams make real decisions and some end early."""
    import torch
    import transformers

    from edgekit.assets import MINILM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(MINILM.path()))
    tokenizer.save_pretrained(str(folder))
    ids = {
        "bos_token_id": tokenizer.cls_token_id,
        "eos_token_id": tokenizer.sep_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    encoder = transformers.ViTConfig(
        hidden_size=encoder_width,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=32,
        patch_size=8,
    )
    if decoder == "gpt2":
        dec = transformers.GPT2Config(
            n_embd=32, n_layer=2, n_head=2, vocab_size=len(tokenizer), n_positions=64, **ids
        )
    else:
        dec = transformers.TrOCRConfig(
            d_model=32, decoder_layers=2, decoder_attention_heads=2, decoder_ffn_dim=37, vocab_size=len(tokenizer),
            max_position_embeddings=64, **ids,
        )  # fmt: skip
    dec.is_decoder, dec.add_cross_attention = True, True
    dec.tie_word_embeddings = not peaked
    config = transformers.VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, dec)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = (
        tokenizer.cls_token_id,
        tokenizer.pad_token_id,
        tokenizer.sep_token_id,
    )
    torch.manual_seed(seed)
    model = transformers.VisionEncoderDecoderModel(config=config).eval()
    if peaked:
        with torch.no_grad():
            head = model.decoder.get_output_embeddings().weight
            head.mul_(peaked)
            head[tokenizer.sep_token_id] *= 1.6
    model.generation_config.decoder_start_token_id = tokenizer.cls_token_id
    model.generation_config.eos_token_id = tokenizer.sep_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(str(folder))
    processor = {
        "do_resize": True, "size": {"height": 32, "width": 32}, "resample": 2, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "image_processor_type": "ViTImageProcessor",
    }  # fmt: skip
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder
