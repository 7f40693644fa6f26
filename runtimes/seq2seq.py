"""Generation with an encoder-decoder artifact (edgekit/models/seq2seq.py): the encoder runs once and hands
the cross-attention cache to the decoder, which then steps like a causal decoder."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from edgekit.errors import InputError
from edgekit.models.cache_io import Seq2SeqIO
from edgekit.runtimes.generate import GenerationConfig, _is_identity, _take_rows, decode


class Seq2SeqStepper:
    """A Stepper (runtimes/generate.py) over an encoder session and a decoder session, for one input:
    every row (beam) shares that input's cross-attention cache."""

    def __init__(self, encoder, decoder, io: Seq2SeqIO):
        self.encoder, self.decoder, self.io = encoder, decoder, io
        self._cross1: dict[str, np.ndarray] = {}
        self._mask1: np.ndarray | None = None
        self.cross: dict[str, np.ndarray] = {}
        self.encoder_mask: np.ndarray | None = None
        self.past: dict[str, np.ndarray] = {}

    def encode(self, inputs: Mapping[str, np.ndarray]) -> None:
        """Run the encoder on batch-1 inputs and keep the cross-attention cache it returns."""
        first = np.asarray(inputs[self.io.encoder_input])
        if first.shape[0] != 1:
            raise InputError(
                f"generation takes one input at a time, got a batch of {first.shape[0]}",
                "call it once per input",
            )
        out = self.encoder.run(dict(inputs))
        self._cross1 = {
            p: out[q] for p, q in zip(self.io.cross_names("past_key_values"), self.io.cross_names("present"))
        }
        self._mask1 = np.asarray(inputs["attention_mask"], dtype=np.int64) if self.io.encoder_mask else None
        self._rows(1)

    def _rows(self, rows: int) -> None:
        """Cross cache and encoder mask repeated for ``rows`` rows (they are the same input's)."""
        self.cross = {
            k: np.ascontiguousarray(np.broadcast_to(v, (rows, *v.shape[1:]))) if rows > 1 else v
            for k, v in self._cross1.items()
        }
        self.encoder_mask = None if self._mask1 is None else np.repeat(self._mask1, rows, axis=0)

    def _run(self, ids: np.ndarray) -> np.ndarray:
        feeds: dict[str, np.ndarray] = {"input_ids": ids, **self.past, **self.cross}
        if self.encoder_mask is not None:
            feeds["encoder_attention_mask"] = self.encoder_mask
        if self.stateful:  # the self-attention cache stays inside the decoder (OpenVINO states)
            return self.decoder.run(feeds, ["logits"])["logits"][:, -1]
        present = self.io.self_names("present")
        if self.decoder.keeps_values:  # IO binding: the cache stays in ONNX Runtime's memory
            out, kept = self.decoder.run_keep(feeds, ["logits"], present)
        else:
            out = kept = self.decoder.run(feeds)
        self.past = {p: kept[q] for p, q in zip(self.io.self_names("past_key_values"), present)}
        return out["logits"][:, -1]

    @property
    def stateful(self) -> bool:
        return self.decoder.stateful

    def start(self, prompt_ids: list[int], rows: int = 1) -> np.ndarray:
        if not self._cross1:
            raise InputError("the encoder has not run", "call encode() with the encoder inputs first")
        self._rows(1)
        if self.stateful:
            self.decoder.reset(1)
            self.past = {}
        else:
            self.past = self.io.empty_self_past(1)
        logits = self._run(np.asarray([prompt_ids], dtype=np.int64))
        if rows > 1:
            self.select(np.zeros(rows, dtype=np.int64))
        return np.repeat(logits, rows, axis=0)

    def advance(self, tokens: np.ndarray) -> np.ndarray:
        return self._run(np.asarray(tokens, dtype=np.int64).reshape(-1, 1))

    def select(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        current = next(iter(self.cross.values())).shape[0]
        if _is_identity(rows, current):
            return
        if self.stateful:
            self.decoder.select_rows(rows)
        else:
            self.past = _take_rows(self.past, rows)
        if len(rows) != current:
            self._rows(len(rows))


def open_seq2seq(
    artifact: Path | str, backend: str = "auto", threads: int | None = None
) -> tuple[Seq2SeqStepper, dict]:
    """The encoder and decoder sessions of an encoder-decoder artifact, as one stepper; and its manifest."""
    from edgekit.artifacts import read_manifest
    from edgekit.runtimes.registry import load_session

    artifact = Path(artifact)
    manifest = read_manifest(artifact)
    io = Seq2SeqIO.from_manifest(manifest)
    files = manifest["export"]["model_files"]
    encoder = load_session(artifact, backend, threads=threads, model_file=files["encoder"])
    decoder = load_session(artifact, backend, threads=threads, model_file=files["decoder"])
    return Seq2SeqStepper(encoder, decoder, io), manifest


def generate_seq2seq(
    stepper: Seq2SeqStepper,
    encoder_inputs: Mapping[str, np.ndarray],
    decoder_prompt: list[int],
    cfg: GenerationConfig = GenerationConfig(),
    eos_token_ids: tuple[int, ...] = (),
    on_token: Callable[[int], bool | None] | None = None,
) -> list[int]:
    """New decoder tokens after ``decoder_prompt`` (usually [decoder_start_token_id]) for one input."""
    cfg.check()
    stepper.encode(encoder_inputs)
    return decode(stepper, decoder_prompt, cfg, eos_token_ids, on_token)


def image_encoder_feed(export: Mapping, tokenizer, pixels: np.ndarray, prompt: str | None = None) -> dict:
    """A captioner's encoder inputs for prepared ``pixels`` [batch, 3, H, W]: ``pixel_values``, and
    for a task-prompted encoder (Florence-2, ``export.encoder_prompt``) the prompt's ids for every
    row (``prompt`` None: the default task)."""
    feed = {"pixel_values": np.ascontiguousarray(pixels, dtype=np.float32)}
    section = export.get("encoder_prompt")
    if section:
        from edgekit.models.task_prompt import encoder_prompt_ids

        ids = encoder_prompt_ids(section, tokenizer, prompt)
        feed["input_ids"] = np.asarray([ids] * pixels.shape[0], dtype=np.int64)
    return feed
