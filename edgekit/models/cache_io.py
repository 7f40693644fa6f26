"""The cache layouts of exported graphs: what a generation loop must know about a KV-cache decoder
(``DecoderIO``, the manifest's ``export.cache``) and an encoder-decoder (``Seq2SeqIO``,
``export.seq2seq``). Shared by export (which writes them) and runtimes (which read them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from edgekit.errors import InputError


@dataclass(frozen=True)
class DecoderIO:
    """What a generation loop needs to know about the graph (from the manifest's ``export.cache``)."""

    num_layers: int
    kv_heads: int
    head_dim: int
    uses_position_ids: bool
    static_cache: bool = False
    """The graph's attention (ONNX Runtime's GroupQueryAttention) can write into a cache buffer
    allocated once at full length, bound as both past and present, instead of a growing one."""

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> "DecoderIO":
        cache = manifest.get("export", {}).get("cache")
        if not cache:
            raise InputError(
                "this artifact is not a text-generation model",
                "export a causal LM with --task text-generation",
            )
        static = manifest["export"].get("attention") == "GroupQueryAttention"
        return cls(
            cache["num_layers"], cache["kv_heads"], cache["head_dim"], cache["uses_position_ids"], static
        )

    def past_names(self) -> list[str]:
        return [f"past_key_values.{i}.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]

    def present_names(self) -> list[str]:
        return [f"present.{i}.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]

    def empty_past(self, batch: int) -> dict[str, np.ndarray]:
        return {
            n: np.zeros((batch, self.kv_heads, 0, self.head_dim), dtype=np.float32) for n in self.past_names()
        }


@dataclass(frozen=True)
class Seq2SeqIO:
    num_layers: int
    heads: int
    head_dim: int
    encoder_input: str = "input_ids"
    """``input_ids`` (text) or ``input_features`` (speech)."""
    encoder_mask: bool = True
    """Whether the encoder takes an attention mask (and the decoder an ``encoder_attention_mask``)."""

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> "Seq2SeqIO":
        cache = manifest.get("export", {}).get("seq2seq")
        if not cache:
            raise InputError(
                "this artifact is not an encoder-decoder model", "export one with --task seq2seq"
            )
        return cls(
            cache["num_layers"],
            cache["heads"],
            cache["head_dim"],
            cache["encoder_input"],
            cache["encoder_mask"],
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "num_layers": self.num_layers,
            "heads": self.heads,
            "head_dim": self.head_dim,
            "encoder_input": self.encoder_input,
            "encoder_mask": self.encoder_mask,
            "layout": "batch, heads, sequence, head_dim",
        }

    def self_names(self, prefix: str) -> list[str]:
        return [f"{prefix}.{i}.decoder.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]

    def cross_names(self, prefix: str) -> list[str]:
        return [f"{prefix}.{i}.encoder.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]

    def past_names(self) -> list[str]:
        """Decoder cache inputs, per layer: self key, self value, cross key, cross value."""
        return [
            f"past_key_values.{i}.{part}.{kv}"
            for i in range(self.num_layers)
            for part in ("decoder", "encoder")
            for kv in ("key", "value")
        ]

    def empty_self_past(self, batch: int) -> dict[str, np.ndarray]:
        return {
            n: np.zeros((batch, self.heads, 0, self.head_dim), dtype=np.float32)
            for n in self.self_names("past_key_values")
        }


def eos_token_ids(eos: Any) -> tuple[int, ...]:
    """A generation config's ``eos_token_id`` (None, one id or a list) as a tuple of ids."""
    if eos is None:
        return ()
    return tuple(int(e) for e in eos) if isinstance(eos, (list, tuple)) else (int(eos),)
