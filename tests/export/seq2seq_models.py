"""Tiny random encoder-decoders, one per registered seq2seq family (used by the seq2seq tests)."""

from __future__ import annotations

from pathlib import Path

from ..conftest import write_tokenizer

# pad 0, start 2, eos 3: the ids of the test tokenizer's [PAD], [CLS], [SEP]
TINY_SEQ2SEQ = {
    "t5": (
        "T5Config",
        dict(
            d_model=64,
            d_kv=16,
            d_ff=96,
            num_layers=2,
            num_decoder_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            decoder_start_token_id=0,
        ),
    ),
    "bart": (
        "BartConfig",
        dict(
            d_model=64,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=96,
            decoder_ffn_dim=96,
            max_position_embeddings=128,
            decoder_start_token_id=2,
            forced_eos_token_id=None,
        ),
    ),
    "whisper": (
        "WhisperConfig",
        dict(
            d_model=64,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=96,
            decoder_ffn_dim=96,
            num_mel_bins=16,
            max_source_positions=24,
            max_target_positions=64,
            decoder_start_token_id=2,
            suppress_tokens=None,
            begin_suppress_tokens=None,
        ),
    ),
}


def make_tiny_seq2seq(folder: Path, model_type: str, seed: int = 0, peaked: float = 0.0) -> Path:
    """A random model saved with a tokenizer. ``peaked`` > 0 scales the LM head (and the EOS row a
    bit more) so that the next-token distribution is sharp and EOS is sometimes chosen: beam search
    then has real decisions to make."""
    import torch
    import transformers

    cls_name, kwargs = TINY_SEQ2SEQ[model_type]
    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_tokenizer(folder, ["input_ids", "attention_mask"])
    config = getattr(transformers, cls_name)(
        vocab_size=vocab,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
        tie_word_embeddings=not peaked,
        **kwargs,
    )
    torch.manual_seed(seed)
    model = (
        transformers.AutoModelForSeq2SeqLM.from_config(config)
        if model_type != "whisper"
        else transformers.WhisperForConditionalGeneration(config)
    )
    model = model.eval()
    if peaked:
        with torch.no_grad():
            head = model.get_output_embeddings().weight
            head.mul_(peaked)
            head[3] *= 1.6
    model.generation_config = transformers.GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id, eos_token_id=3, pad_token_id=0
    )
    model.save_pretrained(str(folder))
    return folder
