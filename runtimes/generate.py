"""Token generation over any Session that runs a KV-cache decoder graph (see export/decoder.py).

Each step feeds only the new token(s) plus the cache the previous step returned, on the same
graph the first step (empty past) ran on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from edgekit.errors import InputError


@dataclass(frozen=True)
class GenerationConfig:
    max_new_tokens: int = 32
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    """Keep the k most likely tokens (0 = off)."""
    top_p: float = 1.0
    """Keep the smallest set of tokens whose probability adds up to p (1.0 = off)."""
    seed: int | None = None
    stop_strings: tuple[str, ...] = ()

    def check(self) -> None:
        if self.max_new_tokens < 1:
            raise InputError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}", "pass e.g. --max-new-tokens 32")
        if not self.do_sample and (self.temperature != 1.0 or self.top_k or self.top_p != 1.0):
            raise InputError("--temperature, --top-k and --top-p only apply when sampling", "add --do-sample, or drop them for greedy decoding")
        if self.temperature <= 0:
            raise InputError(f"--temperature must be > 0, got {self.temperature}", "use e.g. 0.7; for deterministic output use greedy (no --do-sample)")
        if not 0 < self.top_p <= 1 or self.top_k < 0:
            raise InputError(f"--top-p must be in (0, 1] and --top-k >= 0 (got {self.top_p}, {self.top_k})", "pass e.g. --top-p 0.9 --top-k 50")


@dataclass(frozen=True)
class DecoderIO:
    """What a generation loop needs to know about the graph (from the manifest's ``export.cache``)."""

    num_layers: int
    kv_heads: int
    head_dim: int
    uses_position_ids: bool

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> "DecoderIO":
        cache = manifest.get("export", {}).get("cache")
        if not cache:
            raise InputError("this artifact is not a text-generation model", "export a causal LM with --task text-generation")
        return cls(cache["num_layers"], cache["kv_heads"], cache["head_dim"], cache["uses_position_ids"])

    def past_names(self) -> list[str]:
        return [f"past_key_values.{i}.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]

    def present_names(self) -> list[str]:
        return [f"present.{i}.{kv}" for i in range(self.num_layers) for kv in ("key", "value")]

    def empty_past(self, batch: int) -> dict[str, np.ndarray]:
        return {n: np.zeros((batch, self.kv_heads, 0, self.head_dim), dtype=np.float32) for n in self.past_names()}


def position_ids(mask: np.ndarray, new: int) -> np.ndarray:
    """position_ids of the last ``new`` tokens: the running count of real tokens (left padding gets 1s, as transformers does)."""
    pos = np.cumsum(mask, axis=1) - 1
    pos = np.where(mask == 0, 1, pos)
    return pos[:, -new:].astype(np.int64)


def _sample(logits: np.ndarray, cfg: GenerationConfig, rng: np.random.Generator) -> int:
    scores = logits.astype(np.float64) / cfg.temperature
    if cfg.top_k:
        kth = np.partition(scores, -cfg.top_k)[-cfg.top_k]
        scores = np.where(scores < kth, -np.inf, scores)
    probs = np.exp(scores - scores.max())
    probs /= probs.sum()
    if cfg.top_p < 1.0:
        order = np.argsort(-probs)
        cumulative = np.cumsum(probs[order])
        keep = order[: int(np.searchsorted(cumulative, cfg.top_p) + 1)]
        mask = np.zeros_like(probs)
        mask[keep] = probs[keep]
        probs = mask / mask.sum()
    return int(rng.choice(len(probs), p=probs))


def generate_ids(
    session,
    io: DecoderIO,
    prompt_ids: list[int],
    cfg: GenerationConfig = GenerationConfig(),
    eos_token_ids: tuple[int, ...] = (),
    on_token: Callable[[int], bool | None] | None = None,
    max_length: int | None = None,
) -> list[int]:
    """Generate after ``prompt_ids`` (batch 1). ``on_token`` sees each new token; returning True stops."""
    cfg.check()
    if not prompt_ids:
        raise InputError("the prompt is empty", "give at least one token of prompt")
    if max_length is not None and len(prompt_ids) + cfg.max_new_tokens > max_length:
        raise InputError(
            f"prompt ({len(prompt_ids)} tokens) + --max-new-tokens ({cfg.max_new_tokens}) exceeds the model's context of {max_length} tokens",
            "shorten the prompt or lower --max-new-tokens",
        )
    rng = np.random.default_rng(cfg.seed)
    new_ids = np.asarray([prompt_ids], dtype=np.int64)
    mask = np.ones_like(new_ids)
    stateful = bool(getattr(session, "stateful", False))  # the cache stays inside the session
    past = {} if stateful else io.empty_past(1)
    if stateful:
        session.reset(1)
    out: list[int] = []
    for _ in range(cfg.max_new_tokens):
        feeds = {"input_ids": new_ids, "attention_mask": mask, **past}
        if io.uses_position_ids:
            feeds["position_ids"] = position_ids(mask, new_ids.shape[1])
        result = session.run(feeds, ["logits"] if stateful else None)
        logits = result["logits"][0, -1]
        token = _sample(logits, cfg, rng) if cfg.do_sample else int(np.argmax(logits))
        out.append(token)
        if token in eos_token_ids:
            break
        if on_token is not None and on_token(token):
            break
        if not stateful:
            past = {p: result[q] for p, q in zip(io.past_names(), io.present_names())}
        new_ids = np.asarray([[token]], dtype=np.int64)
        mask = np.concatenate([mask, np.ones((1, 1), dtype=np.int64)], axis=1)
    return out


@dataclass
class TextResult:
    prompt_tokens: int
    token_ids: list[int]
    text: str
    stopped_by: str
    """``eos``, ``stop_string`` or ``max_new_tokens``."""


def generate_text(
    artifact,
    prompt: str,
    cfg: GenerationConfig = GenerationConfig(),
    backend: str = "auto",
    chat: bool = False,
    threads: int | None = None,
    on_text: Callable[[str], None] | None = None,
) -> TextResult:
    """Tokenise ``prompt`` (through the chat template with ``chat``), generate, and stream text pieces to ``on_text``."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from edgekit.artifacts import read_manifest
    from edgekit.runtimes.registry import load_session

    cfg.check()
    artifact = Path(artifact)
    manifest = read_manifest(artifact)
    io = DecoderIO.from_manifest(manifest)
    tokenizer = AutoTokenizer.from_pretrained(str(artifact))
    if chat:
        if not getattr(tokenizer, "chat_template", None):
            raise InputError(f"the tokenizer in '{artifact}' has no chat template", "drop --chat and write the prompt in the model's own format")
        prompt_ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True, return_dict=False)
        if isinstance(prompt_ids, dict) or hasattr(prompt_ids, "keys"):
            prompt_ids = prompt_ids["input_ids"]
    else:
        prompt_ids = tokenizer(prompt)["input_ids"]
    prompt_ids = [int(t) for t in prompt_ids]
    session = load_session(artifact, backend, threads=threads)
    eos = tuple(manifest["export"].get("eos_token_ids") or ())
    generated: list[int] = []
    state = {"printed": "", "stopped_by": "max_new_tokens"}

    def on_token(token: int) -> bool:
        generated.append(token)
        text = tokenizer.decode(generated, skip_special_tokens=True)
        for stop in cfg.stop_strings:
            if stop and stop in text:
                text = text[: text.index(stop)]
                state["stopped_by"] = "stop_string"
        if on_text is not None and not text.endswith("\ufffd") and text.startswith(state["printed"]):
            piece = text[len(state["printed"]):]
            if piece:
                on_text(piece)
                state["printed"] = text
        return state["stopped_by"] == "stop_string"

    ids = generate_ids(session, io, prompt_ids, cfg, eos_token_ids=eos, on_token=on_token, max_length=manifest["export"].get("max_length"))
    if ids and ids[-1] in eos:
        state["stopped_by"] = "eos"
    text = tokenizer.decode(generated, skip_special_tokens=True)
    if state["stopped_by"] == "stop_string":
        text = text[: min(text.index(s) for s in cfg.stop_strings if s and s in text)]
    if on_text is not None and text.startswith(state["printed"]) and len(text) > len(state["printed"]):
        on_text(text[len(state["printed"]):])
    return TextResult(len(prompt_ids), ids, text, state["stopped_by"])
