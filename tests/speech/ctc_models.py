"""Tiny random CTC speech models of each family, saved as a fine-tuned model folder would be:
config, safetensors weights, a letter vocabulary (Wav2Vec2CTCTokenizer) and the feature
extractor's preprocessor_config.json."""

from __future__ import annotations

import json
from pathlib import Path

LETTERS = list("ETAOINSHRDLUCMFWYPGBVKXJQZ'")
CTC_FAMILIES = ("wav2vec2", "hubert", "wavlm")


def make_tiny_ctc(folder: Path, model_type: str, seed: int = 0, layer_norm: bool | None = None) -> Path:
    """A 2-layer model of ``model_type``; ``layer_norm`` (default: WavLM only) gives the
    layer-norm feature encoder that takes an attention mask."""
    import torch
    from transformers import AutoConfig, AutoModelForCTC, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    vocab.update({c: i + 5 for i, c in enumerate(LETTERS)})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), word_delimiter_token="|")
    tokenizer.save_pretrained(str(folder))
    layer_norm = model_type == "wavlm" if layer_norm is None else layer_norm
    Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16000, do_normalize=True, return_attention_mask=layer_norm
    ).save_pretrained(str(folder))
    extra = {"num_buckets": 32, "max_bucket_distance": 100} if model_type == "wavlm" else {}
    config = AutoConfig.for_model(
        model_type,
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        conv_dim=(16, 16, 16),
        conv_stride=(5, 4, 2),
        conv_kernel=(10, 4, 2),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        pad_token_id=0,
        feat_extract_norm="layer" if layer_norm else "group",
        do_stable_layer_norm=layer_norm,
        ctc_loss_reduction="mean",
        **extra,
    )
    config.architectures = [type(AutoModelForCTC.from_config(config)).__name__]
    torch.manual_seed(seed)
    model = AutoModelForCTC.from_config(config).eval()
    with torch.no_grad():  # a sharper head, so the random model's greedy path is not all blanks
        model.lm_head.weight.mul_(20.0)
    model.save_pretrained(str(folder))
    return folder
