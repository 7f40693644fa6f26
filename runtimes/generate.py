"""Token generation over any Session that runs a KV-cache decoder graph (see export/decoder.py), and
over an encoder + decoder pair (export/seq2seq.py).

A *stepper* owns the cache between steps: ``start`` runs the prompt, ``advance`` feeds one token
per row, ``select`` reorders or repeats the rows (beam search). Greedy decoding, sampling and beam
search are written once over that interface, so every runtime and both model shapes share them.
Beam search follows transformers' ``generate`` (length penalty, early stopping, the same stopping
rule) so that the tokens are the same.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

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
    num_beams: int = 1
    length_penalty: float = 1.0
    """Beam scores are divided by (generated length ** length_penalty): > 0 favours longer outputs."""
    early_stopping: bool | str = False
    """Beam search: True stops once num_beams hypotheses are done; False (transformers' default) stops when
    no running beam can still beat them (estimated at the current length); "never" only at max length."""
    no_repeat_ngram_size: int = 0
    """Never repeat an n-gram of this size (0 = off); applies to every decoding mode."""
    suppress_tokens: tuple[int, ...] = ()
    """Tokens never generated (Whisper's generation config lists them)."""
    begin_suppress_tokens: tuple[int, ...] = ()
    """Tokens not generated as the first new token."""

    def check(self) -> None:
        if self.max_new_tokens < 1:
            raise InputError(f"--max-new-tokens must be >= 1, got {self.max_new_tokens}", "pass e.g. --max-new-tokens 32")
        if not self.do_sample and (self.temperature != 1.0 or self.top_k or self.top_p != 1.0):
            raise InputError("--temperature, --top-k and --top-p only apply when sampling", "add --do-sample, or drop them for greedy decoding")
        if self.temperature <= 0:
            raise InputError(f"--temperature must be > 0, got {self.temperature}", "use e.g. 0.7; for deterministic output use greedy (no --do-sample)")
        if not 0 < self.top_p <= 1 or self.top_k < 0:
            raise InputError(f"--top-p must be in (0, 1] and --top-k >= 0 (got {self.top_p}, {self.top_k})", "pass e.g. --top-p 0.9 --top-k 50")
        if self.num_beams < 1 or self.no_repeat_ngram_size < 0:
            raise InputError(f"--num-beams must be >= 1 and --no-repeat-ngram-size >= 0 (got {self.num_beams}, {self.no_repeat_ngram_size})", "pass e.g. --num-beams 4")
        if self.early_stopping not in (True, False, "never"):
            raise InputError(f"--early-stopping must be true, false or never, got {self.early_stopping!r}", "pass e.g. --early-stopping never")
        if self.num_beams > 1 and self.do_sample:
            raise InputError("--num-beams with --do-sample (beam sampling) is not supported", "drop --do-sample for beam search, or --num-beams for sampling")
        if self.num_beams > 1 and self.stop_strings:
            raise InputError("--stop strings cannot be used with --num-beams: beams end at EOS or --max-new-tokens", "drop --stop, or use greedy decoding")
        if self.num_beams == 1 and (self.length_penalty != 1.0 or self.early_stopping is not False):
            raise InputError("--length-penalty and --early-stopping only apply to beam search", "add --num-beams N (N > 1), or drop them")


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


class Stepper(Protocol):
    """Owns a decoder's cache between steps; rows of the batch are independent sequences (beams)."""

    def start(self, prompt_ids: list[int], rows: int = 1) -> np.ndarray:
        """Run the prompt; return the next-token logits [rows, vocab] (every row the same)."""
        ...

    def advance(self, tokens: np.ndarray) -> np.ndarray:
        """Feed one token per row; return the next-token logits [rows, vocab]."""
        ...

    def select(self, rows: np.ndarray) -> None:
        """Keep the cache rows ``rows`` (in that order, repeats allowed)."""
        ...


def _take_rows(arrays: dict[str, Any], rows: np.ndarray) -> dict[str, np.ndarray]:
    """Rows of each array (numpy, or a runtime's own value with ``.numpy()``)."""
    return {k: np.ascontiguousarray((v if isinstance(v, np.ndarray) else v.numpy())[rows]) for k, v in arrays.items()}


def _is_identity(rows: np.ndarray, n: int) -> bool:
    return len(rows) == n and bool(np.all(rows == np.arange(n)))


class CacheStepper:
    """Steps a causal decoder graph: past tensors in, present tensors out (or kept inside a stateful session)."""

    def __init__(self, session, io: DecoderIO):
        self.session = session
        self.io = io
        self.stateful = bool(getattr(session, "stateful", False))
        self.past: dict[str, np.ndarray] = {}
        self.mask = np.ones((1, 0), dtype=np.int64)

    def _run(self, ids: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": self.mask, **self.past}
        if self.io.uses_position_ids:
            feeds["position_ids"] = position_ids(self.mask, ids.shape[1])
        if self.stateful:
            return self.session.run(feeds, ["logits"])["logits"][:, -1]
        if hasattr(self.session, "run_keep"):  # IO binding: the cache stays in the runtime's memory
            result, kept = self.session.run_keep(feeds, ["logits"], self.io.present_names())
        else:
            result = kept = self.session.run(feeds)
        self.past = {p: kept[q] for p, q in zip(self.io.past_names(), self.io.present_names())}
        return result["logits"][:, -1]

    def start(self, prompt_ids: list[int], rows: int = 1) -> np.ndarray:
        ids = np.asarray([prompt_ids], dtype=np.int64)
        self.mask = np.ones_like(ids)
        if self.stateful:
            self.session.reset(1)
        else:
            self.past = self.io.empty_past(1)
        logits = self._run(ids)
        if rows > 1:
            self.select(np.zeros(rows, dtype=np.int64))
        return np.repeat(logits, rows, axis=0)

    def advance(self, tokens: np.ndarray) -> np.ndarray:
        self.mask = np.ones((len(tokens), self.mask.shape[1] + 1), dtype=np.int64)
        return self._run(np.asarray(tokens, dtype=np.int64).reshape(-1, 1))

    def select(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if _is_identity(rows, self.mask.shape[0]):
            return
        self.mask = self.mask[rows]
        if self.stateful:
            self.session.select_rows(rows)
        else:
            self.past = _take_rows(self.past, rows)


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


def banned_ngram_tokens(seq: list[int], n: int) -> list[int]:
    """Tokens that would repeat an n-gram already in ``seq`` (the last n-1 tokens followed by them)."""
    if n <= 0 or len(seq) + 1 < n:
        return []
    if n == 1:
        return list(set(seq))
    prefix = tuple(seq[len(seq) - n + 1:])
    return [seq[i + n - 1] for i in range(len(seq) - n + 1) if tuple(seq[i:i + n - 1]) == prefix]


def _ban(scores: np.ndarray, seq: list[int], n: int, cfg: GenerationConfig | None = None, first: bool = False) -> np.ndarray:
    """Scores with -inf for the tokens that may not come next: n-gram repeats, ``suppress_tokens``,
    and ``begin_suppress_tokens`` at the first new token (as transformers' logits processors do)."""
    banned = banned_ngram_tokens(seq, n)
    if cfg is not None:
        banned += list(cfg.suppress_tokens) + (list(cfg.begin_suppress_tokens) if first else [])
    if banned:
        scores = scores.copy()
        scores[..., banned] = -np.inf
    return scores


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float32)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def decode(
    stepper: Stepper,
    prompt_ids: list[int],
    cfg: GenerationConfig = GenerationConfig(),
    eos_token_ids: tuple[int, ...] = (),
    on_token: Callable[[int], bool | None] | None = None,
) -> list[int]:
    """New tokens after ``prompt_ids`` (one sequence). ``on_token`` sees each new token (with beams:
    the final ones, at the end); returning True stops."""
    cfg.check()
    if cfg.num_beams > 1:
        out = beam_search(stepper, prompt_ids, cfg, eos_token_ids)
        for token in out:
            if on_token is not None and on_token(token):
                break
        return out
    rng = np.random.default_rng(cfg.seed)
    logits = stepper.start(prompt_ids, 1)[0]
    seq = list(prompt_ids)
    out: list[int] = []
    for i in range(cfg.max_new_tokens):
        scores = _ban(logits, seq, cfg.no_repeat_ngram_size, cfg, first=i == 0)
        token = _sample(scores, cfg, rng) if cfg.do_sample else int(np.argmax(scores))
        out.append(token)
        seq.append(token)
        if token in eos_token_ids or (on_token is not None and on_token(token)):
            break
        if i + 1 < cfg.max_new_tokens:
            logits = stepper.advance(np.asarray([token]))[0]
    return out


def beam_search(stepper: Stepper, prompt_ids: list[int], cfg: GenerationConfig, eos_token_ids: tuple[int, ...] = ()) -> list[int]:
    """The best finished hypothesis's new tokens. Same rules as transformers' beam search: the top
    (1 + #eos, at least 2) x beams continuations are ranked each step; one that ends (EOS or max
    length) among the top ``num_beams`` joins the finished set with its score divided by
    length ** length_penalty; the others run on."""
    beams = cfg.num_beams
    keep = max(2, 1 + len(eos_token_ids)) * beams
    prompt_len = len(prompt_ids)
    max_len = prompt_len + cfg.max_new_tokens
    eos = np.asarray(eos_token_ids, dtype=np.int64)
    running = np.tile(np.asarray(prompt_ids, dtype=np.int64), (beams, 1))
    running_scores = np.full(beams, -1e9, dtype=np.float32)
    running_scores[0] = 0.0
    done_scores = np.full(beams, -1e9, dtype=np.float32)
    done_seqs: list[list[int]] = [[] for _ in range(beams)]
    done_flags = np.zeros(beams, dtype=bool)
    improvable = True
    logits = stepper.start(list(prompt_ids), beams)
    cur_len = prompt_len
    while True:
        log_probs = _log_softmax(logits)
        if cfg.no_repeat_ngram_size or cfg.suppress_tokens or cfg.begin_suppress_tokens:
            first = cur_len == prompt_len
            log_probs = np.stack([_ban(row, running[b].tolist(), cfg.no_repeat_ngram_size, cfg, first) for b, row in enumerate(log_probs)])
        vocab = log_probs.shape[-1]
        total = (log_probs + running_scores[:, None]).reshape(-1)
        top = np.argsort(-total, kind="stable")[:keep]
        top_scores = total[top]
        source, tokens = top // vocab, top % vocab
        candidates = np.concatenate([running[source], tokens[:, None]], axis=1)
        ends = np.isin(tokens, eos) | (cur_len + 1 >= max_len)
        # the beams that run on: best candidates that did not end
        run_scores = top_scores + ends.astype(np.float32) * np.float32(-1e9)
        chosen = np.argsort(-run_scores, kind="stable")[:beams]
        running, running_scores, rows = candidates[chosen], run_scores[chosen], source[chosen]
        # the finished set: previous finished plus the top-`beams` candidates that just ended
        finished_now = ends & (np.arange(keep) < beams)
        scores_now = top_scores / np.float32((cur_len + 1 - prompt_len) ** cfg.length_penalty)
        if cfg.early_stopping is True and done_flags.all():
            scores_now = scores_now - np.float32(1e9)
        if not improvable:
            scores_now = scores_now - np.float32(1e9)
        scores_now = np.where(finished_now, scores_now, scores_now - np.float32(1e9))
        merged_scores = np.concatenate([done_scores, scores_now])
        merged_seqs = done_seqs + [c.tolist() for c in candidates]
        merged_flags = np.concatenate([done_flags, finished_now])
        best = np.argsort(-merged_scores, kind="stable")[:beams]
        done_scores, done_flags = merged_scores[best], merged_flags[best]
        done_seqs = [merged_seqs[i] for i in best]
        cur_len += 1
        if cfg.early_stopping == "never" and cfg.length_penalty > 0:
            best_len = max_len - prompt_len
        else:
            best_len = cur_len - prompt_len
        best_possible = running_scores[0] / np.float32(best_len ** cfg.length_penalty)
        worst_done = np.where(done_flags, done_scores.min(), np.float32(-1e9))
        improvable = improvable and bool(np.any(best_possible > worst_done))
        all_done = bool(done_flags.all()) and cfg.early_stopping is True
        if not improvable or all_done or bool(ends.all()):
            break
        stepper.select(rows)
        logits = stepper.advance(running[:, -1])
    return [int(t) for t in done_seqs[0][prompt_len:]]


def generate_ids(
    session,
    io: DecoderIO,
    prompt_ids: list[int],
    cfg: GenerationConfig = GenerationConfig(),
    eos_token_ids: tuple[int, ...] = (),
    on_token: Callable[[int], bool | None] | None = None,
    max_length: int | None = None,
) -> list[int]:
    """Generate after ``prompt_ids`` (batch 1) on a causal decoder session. ``on_token`` sees each new token; returning True stops."""
    cfg.check()
    if not prompt_ids:
        raise InputError("the prompt is empty", "give at least one token of prompt")
    check_context(len(prompt_ids), cfg, max_length)
    return decode(CacheStepper(session, io), prompt_ids, cfg, eos_token_ids, on_token)


def check_context(prompt_tokens: int, cfg: GenerationConfig, max_length: int | None) -> None:
    if max_length is not None and prompt_tokens + cfg.max_new_tokens > max_length:
        raise InputError(
            f"prompt ({prompt_tokens} tokens) + --max-new-tokens ({cfg.max_new_tokens}) exceeds the model's context of {max_length} tokens",
            "shorten the prompt or lower --max-new-tokens",
        )


@dataclass
class TextResult:
    prompt_tokens: int
    token_ids: list[int]
    text: str
    stopped_by: str
    """``eos``, ``stop_string`` or ``max_new_tokens``."""
    language: str | None = None
    """Speech models: the language transcribed (given, or detected from the audio)."""


def generate_text(
    artifact,
    prompt: str | None,
    cfg: GenerationConfig = GenerationConfig(),
    backend: str = "auto",
    chat: bool = False,
    threads: int | None = None,
    on_text: Callable[[str], None] | None = None,
    audio=None,
    language: str | None = None,
    translate: bool = False,
) -> TextResult:
    """Tokenise ``prompt`` (through the chat template with ``chat``), generate, and stream text pieces to ``on_text``.

    A causal decoder continues the prompt; an encoder-decoder (text families) reads it with its
    encoder and writes a new text; a speech encoder-decoder (Whisper) reads the WAV file ``audio``
    and writes its transcript (``language``: given, or detected; ``translate``: into English)."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from edgekit.artifacts import read_manifest
    from edgekit.runtimes.registry import load_session

    cfg.check()
    artifact = Path(artifact)
    manifest = read_manifest(artifact)
    export = manifest.get("export", {})
    tokenizer = AutoTokenizer.from_pretrained(str(artifact))
    eos = tuple(export.get("eos_token_ids") or ())
    if chat and not getattr(tokenizer, "chat_template", None):
        raise InputError(f"the tokenizer in '{artifact}' has no chat template", "drop --chat and write the prompt in the model's own format")
    speech = export.get("task") == "seq2seq" and export.get("seq2seq", {}).get("encoder_input") == "input_features"
    if speech and (audio is None or prompt or chat):
        raise InputError(f"'{artifact}' is a speech model: it reads audio, not a text prompt", "pass a WAV file with --audio (and no --prompt)")
    if not speech and (audio is not None or prompt is None):
        raise InputError(f"'{artifact}' reads a text prompt" + (", not audio" if audio is not None else ""), "pass the text with --prompt")
    if not speech and (language or translate):
        raise InputError("--language and --translate apply to speech models only", "drop them")
    language_used = None
    if speech:
        from edgekit.audio import read_wav
        from edgekit.runtimes.seq2seq import open_seq2seq
        from edgekit.runtimes.speech import SpeechPrompt, audio_features, sampling_rate

        encoder_inputs = audio_features(artifact, read_wav(audio, sampling_rate(artifact)))
        prompter = SpeechPrompt.from_artifact(artifact, int(export["decoder_start_token_id"]))
        if language and not prompter.languages:
            raise InputError(f"'{artifact}' is not multilingual, so --language does not apply", "drop --language")
        stepper, _ = open_seq2seq(artifact, backend, threads)
        stepper.encode(encoder_inputs)
        language_id = None
        if prompter.languages:
            if language:
                language_used, language_id = language, prompter.language_token(language)
            else:
                language_used, language_id = prompter.detect(stepper.start([prompter.start])[0])
        prompt_ids = prompter.tokens(language_id, translate)
        cfg = dataclasses.replace(cfg, suppress_tokens=cfg.suppress_tokens or prompter.suppress_tokens, begin_suppress_tokens=cfg.begin_suppress_tokens or prompter.begin_suppress_tokens)
        prompt_len = len(prompt_ids)
        if prompt_len + cfg.max_new_tokens > int(export.get("max_length") or 1 << 30):
            raise InputError(f"--max-new-tokens {cfg.max_new_tokens} exceeds the decoder's {export['max_length']} positions after a {prompt_len}-token prompt", f"use --max-new-tokens {int(export['max_length']) - prompt_len} or less")

        def run(on_token):
            return decode(stepper, prompt_ids, cfg, eos_token_ids=eos, on_token=on_token)
    elif export.get("task") == "seq2seq":
        from edgekit.runtimes.seq2seq import generate_seq2seq, open_seq2seq

        encoder_inputs = {k: np.asarray(v, dtype=np.int64) for k, v in tokenizer([prompt], return_tensors="np").items() if k in ("input_ids", "attention_mask")}
        prompt_len = int(encoder_inputs["input_ids"].shape[1])
        limit = export.get("max_source_length")
        if limit and prompt_len > limit:
            raise InputError(f"the input is {prompt_len} tokens; the encoder reads at most {limit}", "shorten the input")
        if cfg.max_new_tokens + 1 > int(export.get("max_length") or 1 << 30):
            raise InputError(f"--max-new-tokens {cfg.max_new_tokens} exceeds the decoder's {export['max_length']} positions", f"use --max-new-tokens {int(export['max_length']) - 1} or less")
        stepper, _ = open_seq2seq(artifact, backend, threads)

        def run(on_token):
            return generate_seq2seq(stepper, encoder_inputs, [int(export["decoder_start_token_id"])], cfg, eos_token_ids=eos, on_token=on_token)
    else:
        io = DecoderIO.from_manifest(manifest)
        if chat:
            prompt_ids = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=True, return_dict=False)
            if isinstance(prompt_ids, dict) or hasattr(prompt_ids, "keys"):
                prompt_ids = prompt_ids["input_ids"]
        else:
            prompt_ids = tokenizer(prompt)["input_ids"]
        prompt_ids = [int(t) for t in prompt_ids]
        session = load_session(artifact, backend, threads=threads)
        prompt_len = len(prompt_ids)

        def run(on_token):
            return generate_ids(session, io, prompt_ids, cfg, eos_token_ids=eos, on_token=on_token, max_length=export.get("max_length"))

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

    ids = run(on_token)
    if ids and ids[-1] in eos:
        state["stopped_by"] = "eos"
    text = tokenizer.decode(generated, skip_special_tokens=True)
    if state["stopped_by"] == "stop_string":
        text = text[: min(text.index(s) for s in cfg.stop_strings if s and s in text)]
    if on_text is not None and text.startswith(state["printed"]) and len(text) > len(state["printed"]):
        on_text(text[len(state["printed"]):])
    return TextResult(prompt_len, ids, text, state["stopped_by"], language_used)
