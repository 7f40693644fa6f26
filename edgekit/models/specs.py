"""Export specs: what differs between architecture families lives here, not in generic code.

A spec is registered explicitly in ``_SPECS`` (no import side effects); ``spec_for(model_type)``
finds it or says which model types are supported. Tests iterate ``list_specs()``, so a new
family without a tiny test model fails the suite.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgekit.errors import UnsupportedModelError, did_you_mean

ENCODER_TASKS = ("feature-extraction", "sentence-embedding")


@dataclass(frozen=True)
class EncoderSpec:
    """A family of text encoders that ``AutoModel`` loads and that return ``last_hidden_state``."""

    family: str
    model_types: tuple[str, ...]
    inputs: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")
    """The inputs the family's forward accepts; the tokenizer's own names pick from these, in its order."""
    position_offset: int = 0
    """Positions reserved before the first token (RoBERTa-style models start at padding_idx + 1)."""
    atol: float = 1e-4
    attn_implementation: str | None = "eager"
    """Attention used while exporting: the explicit matmul/softmax graph runs faster in ONNX Runtime
    than the decomposed SDPA (whose NaN guards cost ~10% of the run time on CPU)."""
    tasks: tuple[str, ...] = field(default=ENCODER_TASKS)

    def max_positions(self, config) -> int:
        limit = getattr(config, "max_position_embeddings", None) or 512
        return int(limit) - self.position_offset


_SPECS: tuple[EncoderSpec, ...] = (
    EncoderSpec("bert", ("bert",)),
    EncoderSpec("roberta", ("roberta", "xlm-roberta", "camembert"), position_offset=2),
    EncoderSpec("distilbert", ("distilbert",), inputs=("input_ids", "attention_mask")),
    EncoderSpec("mpnet", ("mpnet",), inputs=("input_ids", "attention_mask"), position_offset=2),
    EncoderSpec("electra", ("electra",)),
    EncoderSpec("albert", ("albert",)),
)


def by_model_type(specs):
    return {model_type: spec for spec in specs for model_type in spec.model_types}


def lookup_spec(table: dict, model_type: str | None, what: str):
    """The spec registered for ``model_type``, or an error listing the closest supported type."""
    spec = table.get(model_type or "")
    if spec is None:
        raise UnsupportedModelError(
            f"model type '{model_type}' has no {what} in this edgekit version",
            did_you_mean(str(model_type), table),
        )
    return spec


_BY_MODEL_TYPE = by_model_type(_SPECS)


def list_specs() -> list[EncoderSpec]:
    return list(_SPECS)


def supported_model_types() -> list[str]:
    return sorted(_BY_MODEL_TYPE)


def spec_for(model_type: str | None) -> EncoderSpec:
    return lookup_spec(_BY_MODEL_TYPE, model_type, "export spec")


DECODER_TASKS = ("text-generation",)


@dataclass(frozen=True)
class DecoderSpec:
    """A family of causal decoders whose attention uses the transformers cache API (DynamicCache)."""

    family: str
    model_types: tuple[str, ...]
    uses_position_ids: bool = True
    atol: float = 5e-4
    """Logits reach |20| and sum over 30 layers: SmolLM2-135M differs from PyTorch by 1.6e-4 (1e-5 relative)."""
    attn_implementation: str | None = "eager"
    tasks: tuple[str, ...] = field(default=DECODER_TASKS)


_DECODER_SPECS: tuple[DecoderSpec, ...] = (
    DecoderSpec("llama", ("llama",)),
    DecoderSpec("qwen2", ("qwen2",)),
    DecoderSpec("mistral", ("mistral",)),
    DecoderSpec("phi3", ("phi3",)),
    DecoderSpec("gpt2", ("gpt2",)),
    DecoderSpec("gemma", ("gemma",)),
    # Gemma3: sliding-window and full layers interleaved; exported with a full-length cache (edgekit/models/decoder.py)
    DecoderSpec("gemma3", ("gemma3_text",)),
)

_DECODERS_BY_TYPE = by_model_type(_DECODER_SPECS)


def list_decoder_specs() -> list[DecoderSpec]:
    return list(_DECODER_SPECS)


def decoder_model_types() -> list[str]:
    return sorted(_DECODERS_BY_TYPE)


def decoder_spec_for(model_type: str | None) -> DecoderSpec:
    return lookup_spec(_DECODERS_BY_TYPE, model_type, "text-generation export spec")


SEQ2SEQ_TASKS = ("seq2seq",)


@dataclass(frozen=True)
class Seq2SeqSpec:
    """A family of encoder-decoders whose decoder uses the transformers EncoderDecoderCache."""

    family: str
    model_types: tuple[str, ...]
    encoder_input: str = "input_ids"
    """``input_ids`` for text, ``input_features`` for speech (log-mel frames, no mask),
    ``pixel_values`` for images (captioners: a fixed number of patches, no mask)."""
    model_class: str | None = None
    """The transformers class to load (default AutoModelForSeq2SeqLM)."""
    atol: float = 1e-4
    attn_implementation: str | None = "eager"
    tasks: tuple[str, ...] = field(default=SEQ2SEQ_TASKS)
    architectures: tuple[str, ...] = ()
    """Where a model type also names other heads (BLIP: retrieval, VQA), the ones this spec exports."""
    adapter: str | None = None
    """``module:function`` in edgekit.models that wraps a loaded model whose forward is not an
    encoder-decoder's (``decoder_input_ids``, ``encoder_outputs``, ``past_key_values``) into one."""
    text_prompt: bool = False
    """The decoder continues a text prompt after its start token (BLIP's conditional captioning)."""
    encoder_prompt: bool = False
    """The encoder reads a task prompt's ``input_ids`` beside the image (Florence-2)."""

    @property
    def text_encoder(self) -> bool:
        return self.encoder_input == "input_ids"

    def exports(self, architectures: list[str] | None) -> bool:
        return not self.architectures or bool(set(architectures or ()) & set(self.architectures))


_SEQ2SEQ_SPECS: tuple[Seq2SeqSpec, ...] = (
    Seq2SeqSpec("t5", ("t5", "mt5")),
    Seq2SeqSpec("bart", ("bart", "mbart", "marian")),
    # Whisper's encoder reads 3000 frames through 2 convolutions and attends over 1500 positions:
    # on whisper-base, PyTorch fp32 itself is 4e-4 from fp64 on the encoder output, so 1e-4 would
    # fail on float rounding alone (Optimum validates Whisper at 1e-3 too).
    Seq2SeqSpec(
        "whisper",
        ("whisper",),
        encoder_input="input_features",
        model_class="WhisperForConditionalGeneration",
        atol=1e-3,
    ),
    # Captioners (ViT-GPT2, TrOCR): any vision encoder joined to a text decoder with cross-attention.
    Seq2SeqSpec(
        "vision-encoder-decoder",
        ("vision-encoder-decoder",),
        encoder_input="pixel_values",
        model_class="VisionEncoderDecoderModel",
    ),
    # BLIP: a ViT and a BERT decoder with cross-attention, not an encoder-decoder class; an adapter
    # gives it one's forward. Its prompt (conditional captioning) follows the [DEC] start token.
    Seq2SeqSpec(
        "blip",
        ("blip",),
        encoder_input="pixel_values",
        model_class="BlipForConditionalGeneration",
        architectures=("BlipForConditionalGeneration",),
        adapter="blip:as_seq2seq",
        text_prompt=True,
    ),
    # Florence-2 (the closest to OFA): DaViT image features ahead of the task prompt, through a BART
    # encoder-decoder; the encoder graph reads pixels and the prompt's ids (models/florence2.py).
    Seq2SeqSpec(
        "florence2",
        ("florence2",),
        encoder_input="pixel_values",
        model_class="Florence2ForConditionalGeneration",
        adapter="florence2:as_seq2seq",
        encoder_prompt=True,
    ),
)

_SEQ2SEQ_BY_TYPE = by_model_type(_SEQ2SEQ_SPECS)


def list_seq2seq_specs() -> list[Seq2SeqSpec]:
    return list(_SEQ2SEQ_SPECS)


def seq2seq_model_types() -> list[str]:
    return sorted(_SEQ2SEQ_BY_TYPE)


def seq2seq_spec_for(model_type: str | None) -> Seq2SeqSpec:
    return lookup_spec(_SEQ2SEQ_BY_TYPE, model_type, "seq2seq export spec")


def claims_decoder(raw_config: dict) -> bool:
    """A causal-LM architecture of a known decoder family."""
    archs = raw_config.get("architectures") or []
    causal = not archs or any(a.endswith("ForCausalLM") or a.endswith("LMHeadModel") for a in archs)
    return raw_config.get("model_type") in _DECODERS_BY_TYPE and causal


def claims_seq2seq(raw_config: dict) -> bool:
    """A known encoder-decoder family (with the head its spec exports)."""
    spec = _SEQ2SEQ_BY_TYPE.get(raw_config.get("model_type") or "")
    return (
        spec is not None
        and bool(raw_config.get("is_encoder_decoder", True))
        and spec.exports(raw_config.get("architectures"))
    )
