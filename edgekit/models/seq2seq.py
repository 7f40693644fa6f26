"""Encoder-decoders (T5, BART, Whisper, captioners): an encoder graph that also computes the cross-attention
cache once, and one decoder graph for every step, its self-attention cache growing.

    encoder.onnx
      input_ids [batch, encoder_sequence] (Whisper: input_features [batch, mels, frames];  ─┐
                                           captioners: pixel_values [batch, 3, height, width])  │
      attention_mask [batch, encoder_sequence]                          (text families) ─┴─> encoder
          ├─> last_hidden_state            [batch, encoder_sequence, hidden]
          └─> present.{i}.encoder.key/value [batch, heads, encoder_sequence, head_dim]  (cross-attention K/V, once)

    decoder.onnx
      input_ids                          [batch, sequence]                      ─┐
      encoder_attention_mask             [batch, encoder_sequence]  (text)      ─┤
      past_key_values.{i}.decoder.key/value [batch, heads, past_sequence, head_dim] ─┼─> decoder ─> logits [batch, sequence, vocab]
      past_key_values.{i}.encoder.key/value [batch, heads, encoder_sequence, head_dim] ─┘      └──> present.{i}.decoder.key/value
                                                                                                  [batch, heads, past_sequence + sequence, head_dim]

The encoder graph runs the model's own decoder once on the start token to fill the
cross-attention cache (the exporter then drops everything that does not feed the outputs), so no
family-specific projection code is needed. The decoder graph is the model's own forward with an
EncoderDecoderCache whose cross part is marked as filled; the first step feeds an empty self past.
The names follow Hugging Face's ONNX tooling.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import InputError
from edgekit.models.cache_io import Seq2SeqIO
from edgekit.models.specs import (
    SEQ2SEQ_TASKS,
    Seq2SeqSpec,
    claims_seq2seq,
    seq2seq_model_types,
    seq2seq_spec_for,
)


def _modules():
    import torch
    from transformers import DynamicCache, EncoderDecoderCache

    from edgekit.models.decoder import flat_cache, seed_cache

    class EncoderWithCrossCache(torch.nn.Module):
        """Encoder inputs in; the encoder output and the cross-attention K/V of every decoder layer out."""

        def __init__(self, model, spec: Seq2SeqSpec, start_token: int):
            super().__init__()
            self.model, self.spec, self.start_token = model, spec, start_token

        def forward(self, features, attention_mask=None, input_ids=None):
            batch = features.shape[0]
            cache = EncoderDecoderCache(
                DynamicCache(config=self.model.config), DynamicCache(config=self.model.config)
            )
            start = torch.full((batch, 1), self.start_token, dtype=torch.long, device=features.device)
            kwargs = {
                self.spec.encoder_input: features,
                "decoder_input_ids": start,
                "past_key_values": cache,
                "use_cache": True,
            }
            if attention_mask is not None:
                kwargs["attention_mask"] = attention_mask
            if input_ids is not None:  # a task prompt beside the image (Florence-2)
                kwargs["input_ids"] = input_ids
            out = self.model(**kwargs)
            return (out.encoder_last_hidden_state, *flat_cache(out.past_key_values.cross_attention_cache))

    class DecoderWithCrossCache(torch.nn.Module):
        """Decoder ids, the encoder mask and both caches in; logits and the grown self-attention cache out."""

        def __init__(self, model, num_layers: int):
            super().__init__()
            self.model, self.num_layers = model, num_layers
            encoder = getattr(model.config, "encoder", None)
            self.stand_in_width = int(getattr(encoder, "hidden_size", 1) or 1)

        def forward(self, input_ids, encoder_attention_mask=None, past=()):
            config = self.model.config
            self_cache, cross_cache = DynamicCache(config=config), DynamicCache(config=config)
            # past per layer: self key, self value, cross key, cross value
            seed_cache(self_cache, [t for i in range(self.num_layers) for t in past[4 * i : 4 * i + 2]])
            seed_cache(cross_cache, [t for i in range(self.num_layers) for t in past[4 * i + 2 : 4 * i + 4]])
            cache = EncoderDecoderCache(self_cache, cross_cache)
            cache.is_updated = {i: True for i in range(self.num_layers)}
            # The cross-attention K/V come from the cache; the encoder output only lends its batch
            # size and length to the mask helpers, so a [batch, encoder_sequence, width] stand-in of
            # zeros is enough (width 1, or a captioner's encoder width where it is projected first:
            # that projection feeds nothing once the cache is filled, and the exporter drops it).
            stand_in = past[2][:, 0, :, :1]
            if self.stand_in_width > 1:
                stand_in = stand_in.expand(-1, -1, self.stand_in_width) * 0
            kwargs = {
                "encoder_outputs": (stand_in,),
                "decoder_input_ids": input_ids,
                "past_key_values": cache,
                "use_cache": True,
            }
            if encoder_attention_mask is not None:
                kwargs["attention_mask"] = encoder_attention_mask
            out = self.model(**kwargs)
            return (out.logits, *flat_cache(out.past_key_values.self_attention_cache))

    return EncoderWithCrossCache, DecoderWithCrossCache


@dataclass
class BuiltSeq2Seq:
    encoder: Any
    decoder: Any
    model: Any
    tokenizer: Any
    config: Any
    spec: Seq2SeqSpec
    io: Seq2SeqIO
    start_token: int
    encoder_length: int = 0
    """Positions the encoder gives (fixed for speech and images; text: that of the example)."""
    prompt: dict | None = None
    """A task-prompted encoder's prompt layout (``models/task_prompt.py``: bos, eos, tasks)."""
    model_dir: Path | None = None

    @property
    def text_config(self) -> Any:
        """The decoder's config (a captioner's ``decoder``; the model's own for the others)."""
        return self.config.get_text_config(decoder=True)

    @property
    def dynamic_encoder_length(self) -> bool:
        """The encoder's positions depend on its input (text, or an image with a prompt)."""
        return self.spec.text_encoder or self.spec.encoder_prompt

    def encoder_names(self) -> tuple[list[str], list[str]]:
        inputs = (
            [self.spec.encoder_input]
            + (["input_ids"] if self.spec.encoder_prompt else [])
            + (["attention_mask"] if self.spec.text_encoder else [])
        )
        return inputs, ["last_hidden_state"] + self.io.cross_names("present")

    def decoder_names(self) -> tuple[list[str], list[str]]:
        inputs = (
            ["input_ids"]
            + (["encoder_attention_mask"] if self.spec.text_encoder else [])
            + self.io.past_names()
        )
        return inputs, ["logits"] + self.io.self_names("present")


def start_token(model) -> int:
    for source in (model.generation_config, model.config):
        token = getattr(source, "decoder_start_token_id", None)
        if token is not None:
            return int(token)
    raise InputError(
        "the model config has no decoder_start_token_id",
        "set decoder_start_token_id in config.json or generation_config.json",
    )


def build_seq2seq(model_dir: Path, spec: Seq2SeqSpec) -> BuiltSeq2Seq:
    import torch

    from edgekit.models.decoder import load_generator

    tokenizer, model = load_generator(
        model_dir,
        spec.model_class or "AutoModelForSeq2SeqLM",
        spec.attn_implementation,
        with_tokenizer=spec.text_encoder or spec.encoder_prompt,
        tokenizer_needed_for="an encoder-decoder export",
    )
    if not spec.exports(getattr(model.config, "architectures", None)):
        raise InputError(
            f"'{model_dir}' is a {model.config.architectures} model; edgekit exports {spec.family} as "
            f"{' or '.join(spec.architectures)} (a captioner) only",
            "pass a captioning checkpoint of this family",
        )
    if spec.adapter:
        module, function = spec.adapter.split(":")
        model = getattr(importlib.import_module(f"edgekit.models.{module}"), function)(model)
    encoder_cls, decoder_cls = _modules()
    token = start_token(model)
    encoder = encoder_cls(model, spec, token).eval()
    with torch.inference_mode():
        example = encoder_example(model, spec, batch=1, model_dir=model_dir)
        outs = encoder(**example)
    cross = outs[1:]
    io = Seq2SeqIO(
        num_layers=len(cross) // 2,
        heads=int(cross[0].shape[1]),
        head_dim=int(cross[0].shape[3]),
        encoder_input=spec.encoder_input,
        encoder_mask=spec.text_encoder,
    )
    decoder = decoder_cls(model, io.num_layers).eval()
    prompt = model.prompt_section(model_dir) if spec.encoder_prompt else None
    return BuiltSeq2Seq(
        encoder,
        decoder,
        model,
        tokenizer,
        model.config,
        spec,
        io,
        token,
        int(cross[0].shape[2]),
        prompt,
        model_dir,
    )


def encoder_example(
    model, spec: Seq2SeqSpec, batch: int = 2, length: int = 5, seed: int = 0, model_dir: Path | None = None
) -> dict[str, Any]:
    """Example encoder inputs: token ids (text) or log-mel features of the model's fixed length (speech)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    if spec.text_encoder:
        ids = torch.randint(4, int(model.config.vocab_size), (batch, length), generator=generator)
        return {"features": ids, "attention_mask": torch.ones(batch, length, dtype=torch.long)}
    shape = feature_shape(model.config, spec, batch, model_dir)
    example = {"features": torch.randn(*shape, generator=generator)}
    if spec.encoder_prompt:
        vocab = int(model.config.get_text_config(decoder=True).vocab_size)
        example["input_ids"] = torch.randint(4, vocab, (batch, length), generator=generator)
    return example


def feature_shape(
    config: Any, spec: Seq2SeqSpec, batch: int, model_dir: Path | None = None
) -> tuple[int, ...]:
    """The fixed shape of a speech or image encoder's input: Whisper's log-mel window, or a
    captioner's pixels at the vision encoder's size."""
    if spec.encoder_input == "pixel_values":
        vision = (
            getattr(config, "vision_config", None) or config.encoder
        )  # BLIP's, or a VisionEncoderDecoder's
        size = getattr(vision, "image_size", None) or _processor_size(model_dir)
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return (batch, int(getattr(vision, "num_channels", 3)), int(h), int(w))
    return (batch, int(config.num_mel_bins), 2 * int(config.max_source_positions))


def _processor_size(model_dir: Path | None) -> tuple[int, int]:
    """The image size of a vision config that names none (Florence-2's DaViT is convolutional): the
    folder's image processor's fixed size, else Florence-2's 768 x 768."""
    from edgekit.calibration.images import ImagePreprocessor, has_image_processor

    if model_dir is not None and has_image_processor(model_dir):
        size = ImagePreprocessor.from_model(model_dir).size
        if isinstance(size, tuple):
            return size
    return (768, 768)


def decoder_example(built: BuiltSeq2Seq) -> dict[str, Any]:
    """Batch 2, 3 past tokens, 4 new tokens, 5 encoder positions: distinct sizes >= 2 keep every axis dynamic."""
    import torch

    batch, past_len, new_len, enc_len = 2, 3, 4, 5
    if not built.dynamic_encoder_length:
        enc_len = built.encoder_length
    io = built.io
    generator = torch.Generator().manual_seed(0)
    past = []
    for _ in range(io.num_layers):
        past += [torch.randn(batch, io.heads, past_len, io.head_dim, generator=generator) for _ in range(2)]
        past += [torch.randn(batch, io.heads, enc_len, io.head_dim, generator=generator) for _ in range(2)]
    kwargs: dict[str, Any] = {
        "input_ids": torch.randint(
            4, int(built.text_config.vocab_size), (batch, new_len), generator=generator
        )
    }
    if built.spec.text_encoder:
        kwargs["encoder_attention_mask"] = torch.ones(batch, enc_len, dtype=torch.long)
    kwargs["past"] = past
    return kwargs


def encoder_shapes(built: BuiltSeq2Seq) -> tuple[dict, dict[str, dict[int, str]]]:
    import torch

    dyn = torch.export.Dim.DYNAMIC
    inputs, outputs = built.encoder_names()
    if built.spec.text_encoder:
        shapes: dict[str, Any] = {"features": {0: dyn, 1: dyn}, "attention_mask": {0: dyn, 1: dyn}}
        names = {n: {0: "batch", 1: "encoder_sequence"} for n in inputs}
    else:
        shapes = {"features": {0: dyn}}
        names = {inputs[0]: {0: "batch"}}
        if built.spec.encoder_prompt:
            shapes["input_ids"] = {0: dyn, 1: dyn}
            names["input_ids"] = {0: "batch", 1: "prompt_sequence"}
    names["last_hidden_state"] = {0: "batch", 1: "encoder_sequence"}
    for name in outputs[1:]:
        names[name] = {0: "batch", 2: "encoder_sequence"}
    return shapes, names


def decoder_shapes(built: BuiltSeq2Seq) -> tuple[dict, dict[str, dict[int, str]]]:
    import torch

    dyn = torch.export.Dim.DYNAMIC
    past_shapes = []
    for _ in range(built.io.num_layers):
        past_shapes += [{0: dyn, 2: dyn}] * 2
        past_shapes += [{0: dyn, 2: dyn} if built.dynamic_encoder_length else {0: dyn}] * 2
    shapes: dict[str, Any] = {"input_ids": {0: dyn, 1: dyn}, "past": past_shapes}
    names: dict[str, dict[int, str]] = {
        "input_ids": {0: "batch", 1: "sequence"},
        "logits": {0: "batch", 1: "sequence"},
    }
    if built.spec.text_encoder:
        shapes["encoder_attention_mask"] = {0: dyn, 1: dyn}
        names["encoder_attention_mask"] = {0: "batch", 1: "encoder_sequence"}
    for name in built.io.self_names("past_key_values"):
        names[name] = {0: "batch", 2: "past_sequence"}
    for name in built.io.cross_names("past_key_values"):
        names[name] = {0: "batch", 2: "encoder_sequence"}
    for name in built.io.self_names("present"):
        names[name] = {0: "batch", 2: "total_sequence"}
    return shapes, names


# --- the kind protocol (edgekit/models/kinds.py) ---
TASKS = SEQ2SEQ_TASKS
model_types = seq2seq_model_types
spec_for = seq2seq_spec_for


def claims(raw_config: dict) -> str | None:
    return TASKS[0] if claims_seq2seq(raw_config) else None


def build(model_dir: Path, spec: Seq2SeqSpec, task: str = TASKS[0]) -> BuiltSeq2Seq:
    return build_seq2seq(model_dir, spec)


def reference_io(built: BuiltSeq2Seq, model_file: str | None = None):
    """The encoder graph's reference when ``model_file`` names the encoder, else the decoder's."""
    from edgekit.models.kinds import ReferenceIO

    if "encoder" in (model_file or ""):
        inputs, outputs = built.encoder_names()
        specs = None
        if built.spec.encoder_prompt:  # pixels and token ids
            specs = {
                inputs[0]: (("batch", None, None, None), "float32"),
                "input_ids": (("batch", "prompt_sequence"), "int64"),
            }
        return ReferenceIO(
            built.encoder,
            inputs,
            outputs,
            image_inputs=not built.spec.text_encoder,
            first_input_as="features",
            input_specs=specs,
        )
    inputs, outputs = built.decoder_names()
    return ReferenceIO(built.decoder, inputs, outputs, past_names=built.io.past_names())
