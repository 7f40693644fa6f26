"""Token generation over any Session that runs a KV-cache decoder graph (see edgekit/models/decoder.py), and
over an encoder + decoder pair (edgekit/models/seq2seq.py).

A *stepper* owns the cache between steps: ``start`` runs the prompt, ``advance`` feeds one token
per row, ``select`` reorders or repeats the rows (beam search). Greedy decoding, sampling and beam
search are written once over that interface, so every runtime and both model shapes share them.
Beam search follows transformers' ``generate`` (length penalty, early stopping, the same stopping
rule) so that the tokens are the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol

import numpy as np

from edgekit.errors import InputError
from edgekit.models.cache_io import DecoderIO


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
            raise InputError(
                f"--max-new-tokens must be >= 1, got {self.max_new_tokens}", "pass e.g. --max-new-tokens 32"
            )
        if not self.do_sample and (self.temperature != 1.0 or self.top_k or self.top_p != 1.0):
            raise InputError(
                "--temperature, --top-k and --top-p only apply when sampling",
                "add --do-sample, or drop them for greedy decoding",
            )
        if self.temperature <= 0:
            raise InputError(
                f"--temperature must be > 0, got {self.temperature}",
                "use e.g. 0.7; for deterministic output use greedy (no --do-sample)",
            )
        if not 0 < self.top_p <= 1 or self.top_k < 0:
            raise InputError(
                f"--top-p must be in (0, 1] and --top-k >= 0 (got {self.top_p}, {self.top_k})",
                "pass e.g. --top-p 0.9 --top-k 50",
            )
        if self.num_beams < 1 or self.no_repeat_ngram_size < 0:
            raise InputError(
                f"--num-beams must be >= 1 and --no-repeat-ngram-size >= 0 (got {self.num_beams}, {self.no_repeat_ngram_size})",
                "pass e.g. --num-beams 4",
            )
        if self.early_stopping not in (True, False, "never"):
            raise InputError(
                f"--early-stopping must be true, false or never, got {self.early_stopping!r}",
                "pass e.g. --early-stopping never",
            )
        if self.num_beams > 1 and self.do_sample:
            raise InputError(
                "--num-beams with --do-sample (beam sampling) is not supported",
                "drop --do-sample for beam search, or --num-beams for sampling",
            )
        if self.num_beams > 1 and self.stop_strings:
            raise InputError(
                "--stop strings cannot be used with --num-beams: beams end at EOS or --max-new-tokens",
                "drop --stop, or use greedy decoding",
            )
        if self.num_beams == 1 and (self.length_penalty != 1.0 or self.early_stopping is not False):
            raise InputError(
                "--length-penalty and --early-stopping only apply to beam search",
                "add --num-beams N (N > 1), or drop them",
            )


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
    return {
        k: np.ascontiguousarray((v if isinstance(v, np.ndarray) else v.numpy())[rows])
        for k, v in arrays.items()
    }


def _is_identity(rows: np.ndarray, n: int) -> bool:
    return len(rows) == n and bool(np.all(rows == np.arange(n)))


class CacheStepper:
    """Steps a causal decoder graph: past tensors in, present tensors out (or kept inside a stateful session)."""

    def __init__(self, session, io: DecoderIO, capacity: int | None = None):
        self.session = session
        self.io = io
        self.stateful = session.stateful
        self.past: dict[str, np.ndarray] = {}
        self.mask = np.ones((1, 0), dtype=np.int64)
        self.capacity = capacity
        """Tokens a single-row generation can reach (prompt + new): with a graph that takes a static
        cache on an IO-binding session, the cache is allocated once at that length."""
        self.static = None

    def _run(self, ids: np.ndarray) -> np.ndarray:
        feeds = {"input_ids": ids, "attention_mask": self.mask}
        if self.io.uses_position_ids:
            feeds["position_ids"] = position_ids(self.mask, ids.shape[1])
        if self.static is not None and self.mask.shape[1] > self.capacity:  # past what it holds
            self.past, self.static = self.static.arrays(self.mask.shape[1] - ids.shape[1]), None
        if self.static is not None:
            return self.static.run(feeds, "logits")[:, -1].copy()  # the buffer is the next step's
        feeds.update(self.past)
        if self.stateful:
            return self.session.run(feeds, ["logits"])["logits"][:, -1]
        if self.session.keeps_values:  # IO binding: the cache stays in the runtime's memory
            result, kept = self.session.run_keep(feeds, ["logits"], self.io.present_names())
        else:
            result = kept = self.session.run(feeds)
        self.past = {p: kept[q] for p, q in zip(self.io.past_names(), self.io.present_names())}
        return result["logits"][:, -1]

    def start(self, prompt_ids: list[int], rows: int = 1) -> np.ndarray:
        ids = np.asarray([prompt_ids], dtype=np.int64)
        self.mask = np.ones_like(ids)
        self.static = None
        if self.stateful:
            self.session.reset(1)
        elif self._static_fits(ids.shape[1], rows):
            shape = (1, self.io.kv_heads, self.capacity, self.io.head_dim)
            self.static = self.session.static_cache(
                dict(zip(self.io.past_names(), self.io.present_names())), shape
            )
        else:
            self.past = self.io.empty_past(1)
        logits = self._run(ids)
        if rows > 1:
            self.select(np.zeros(rows, dtype=np.int64))
        return np.repeat(logits, rows, axis=0)

    def advance(self, tokens: np.ndarray) -> np.ndarray:
        self.mask = np.ones((len(tokens), self.mask.shape[1] + 1), dtype=np.int64)
        return self._run(np.asarray(tokens, dtype=np.int64).reshape(-1, 1))

    def _static_fits(self, prompt_len: int, rows: int) -> bool:
        return (
            self.io.static_cache
            and self.session.keeps_values
            and rows == 1
            and self.capacity is not None
            and prompt_len <= self.capacity
        )

    def select(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if _is_identity(rows, self.mask.shape[0]):
            return
        if self.static is not None:  # rows reordered or repeated: back to a growing cache
            self.past, self.static = self.static.arrays(self.mask.shape[1]), None
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
    prefix = tuple(seq[len(seq) - n + 1 :])
    return [seq[i + n - 1] for i in range(len(seq) - n + 1) if tuple(seq[i : i + n - 1]) == prefix]


def _ban(
    scores: np.ndarray, seq: list[int], n: int, cfg: GenerationConfig | None = None, first: bool = False
) -> np.ndarray:
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


def beam_search(
    stepper: Stepper, prompt_ids: list[int], cfg: GenerationConfig, eos_token_ids: tuple[int, ...] = ()
) -> list[int]:
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
            log_probs = np.stack(
                [
                    _ban(row, running[b].tolist(), cfg.no_repeat_ngram_size, cfg, first)
                    for b, row in enumerate(log_probs)
                ]
            )
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
        best_possible = running_scores[0] / np.float32(best_len**cfg.length_penalty)
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
    capacity = len(prompt_ids) + cfg.max_new_tokens
    return decode(CacheStepper(session, io, capacity), prompt_ids, cfg, eos_token_ids, on_token)


def check_context(prompt_tokens: int, cfg: GenerationConfig, max_length: int | None) -> None:
    if max_length is not None and prompt_tokens + cfg.max_new_tokens > max_length:
        raise InputError(
            f"prompt ({prompt_tokens} tokens) + --max-new-tokens ({cfg.max_new_tokens}) exceeds the model's context of {max_length} tokens",
            "shorten the prompt or lower --max-new-tokens",
        )
