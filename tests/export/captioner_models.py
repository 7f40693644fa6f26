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
    import transformers

    from edgekit.benchmarks.captioner_int8 import save_captioner

    folder = Path(folder)
    encoder = transformers.ViTConfig(
        hidden_size=encoder_width,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=32,
        patch_size=8,
    )

    def text(vocab_size: int, ids: dict):
        if decoder == "gpt2":
            return transformers.GPT2Config(
                n_embd=32, n_layer=2, n_head=2, vocab_size=vocab_size, n_positions=64, **ids
            )
        return transformers.TrOCRConfig(
            d_model=32, decoder_layers=2, decoder_attention_heads=2, decoder_ffn_dim=37, vocab_size=vocab_size,
            max_position_embeddings=64, **ids,
        )  # fmt: skip

    save_captioner(folder, encoder, text, peaked, seed)
    processor = {
        "do_resize": True, "size": {"height": 32, "width": 32}, "resample": 2, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
        "image_processor_type": "ViTImageProcessor",
    }  # fmt: skip
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


def make_tiny_blip(folder: Path, seed: int = 0, peaked: float = 25.0) -> Path:
    """A tiny ``BlipForConditionalGeneration`` (a ViT and a BERT decoder with cross-attention) with
    BLIP's tokenizer layout: the MiniLM WordPiece plus [DEC] (bos, the decoder's start) and [ENC]."""
    import torch
    import transformers

    from edgekit.assets import MINILM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(MINILM.path()))
    tokenizer.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    tokenizer.save_pretrained(str(folder))
    text = transformers.BlipTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        max_position_embeddings=64, bos_token_id=tokenizer.bos_token_id, sep_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id,
    )  # fmt: skip
    vision = transformers.BlipVisionConfig(
        hidden_size=48,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        image_size=32,
        patch_size=8,
    )
    config = transformers.BlipConfig(text_config=text.to_dict(), vision_config=vision.to_dict())
    torch.manual_seed(seed)
    model = transformers.BlipForConditionalGeneration(config).eval()
    with torch.no_grad():
        head = model.text_decoder.get_output_embeddings().weight
        head.mul_(peaked)
        head[tokenizer.sep_token_id] *= 1.6
    model.save_pretrained(str(folder))
    processor = {
        "do_resize": True, "size": {"height": 32, "width": 32}, "resample": 3, "do_rescale": True,
        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711], "do_convert_rgb": True,
        "image_processor_type": "BlipImageProcessor",
    }  # fmt: skip
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


def make_tiny_florence2(folder: Path, seed: int = 0, peaked: float = 25.0) -> Path:
    """A tiny ``Florence2ForConditionalGeneration`` (a two-stage DaViT, a BART encoder-decoder) with
    its processor (the task table, an image processor at 32 x 32) over the MiniLM WordPiece with an
    ``<image>`` token, [CLS]/[SEP] as <s>/</s>; the LM head untied and scaled by ``peaked``."""
    import torch
    import transformers

    from edgekit.assets import MINILM

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        str(MINILM.path()),
        extra_special_tokens={"image_token": "<image>"},
        bos_token="[CLS]",
        eos_token="[SEP]",
    )
    text = transformers.BartConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=64,
        bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id, pad_token_id=tokenizer.pad_token_id,
        decoder_start_token_id=tokenizer.sep_token_id, forced_eos_token_id=None,
    )  # fmt: skip
    vision = transformers.Florence2VisionConfig(
        depths=[1, 1], patch_size=[7, 3], patch_stride=[4, 2], patch_padding=[3, 1], patch_prenorm=[False, True],
        embed_dim=[16, 32], num_heads=[2, 2], num_groups=[2, 2], window_size=2, projection_dim=32, drop_path_rate=0.0,
    )  # fmt: skip
    config = transformers.Florence2Config(
        text_config=text.to_dict(), vision_config=vision.to_dict(), image_token_id=tokenizer.image_token_id,
        tie_word_embeddings=False,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = transformers.Florence2ForConditionalGeneration(config).eval()
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        head.mul_(peaked)
        head[tokenizer.sep_token_id] *= 1.6
    model.save_pretrained(str(folder))
    image_processor = transformers.CLIPImageProcessorPil(
        size={"height": 32, "width": 32}, do_center_crop=False, image_seq_length=17
    )
    transformers.Florence2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(
        str(folder)
    )
    return folder
