"""Transcripts from CTC speech artifacts (wav2vec2, HuBERT, WavLM) on any backend.

The audio is read at the artifact's rate and normalised by its feature extractor; the graph gives
per-frame logits and the transcript is their greedy CTC path with the artifact's own vocabulary.
Audio longer than ``WINDOW_S`` runs in overlapping windows (each sees ``CONTEXT_S`` of audio on
either side of the part it is kept for), and the kept frames are joined before decoding, so a
letter cut by a window edge is read once; attention cost grows with the square of the length,
and a window bounds memory the same for a 10 s or a 10 min file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import InputError

WINDOW_S = 20.0
CONTEXT_S = 2.0


@dataclass
class Transcript:
    text: str
    token_ids: list[int]
    seconds: float
    windows: int


def is_ctc(manifest: dict) -> bool:
    from edgekit.models.ctc import CTC_TASKS

    return manifest.get("export", {}).get("task") in CTC_TASKS


class CtcTranscriber:
    """One artifact opened once: ``transcribe(samples)`` for any number of utterances."""

    def __init__(self, artifact: Path | str, backend: str = "auto", threads: int | None = None):
        from edgekit.artifacts import read_manifest
        from edgekit.models.ctc import load_extractor
        from edgekit.models.tokenizer import load_tokenizer
        from edgekit.runtimes.registry import load_session

        self.artifact = Path(artifact)
        manifest = read_manifest(self.artifact)
        if not is_ctc(manifest):
            raise InputError(f"'{artifact}' is not a CTC speech model", "export a *ForCTC model")
        export = manifest["export"]
        self.info = export["ctc"]
        self.input_names = [i["name"] for i in export["inputs"]]
        self.extractor = load_extractor(self.artifact)
        self.tokenizer = load_tokenizer(self.artifact, needed_for="a transcript")
        self.session = load_session(self.artifact, backend, threads)
        self.rate = int(self.info["sampling_rate"])

    def logits(self, samples: np.ndarray) -> tuple[np.ndarray, int]:
        """Per-frame logits of the whole utterance [frames, vocab], and how many windows it took."""
        from edgekit.models.ctc import audio_inputs

        samples = np.asarray(samples, dtype=np.float32)
        if len(samples) < self.rate // 50:
            raise InputError(
                f"the audio is {1000 * len(samples) / self.rate:.0f} ms long; a CTC model needs at least 20 ms",
                "pass a longer recording",
            )
        window, context = int(WINDOW_S * self.rate), int(CONTEXT_S * self.rate)
        if len(samples) <= window:
            return self._run(audio_inputs(self.extractor, samples, self.input_names)), 1
        step, pieces = window - 2 * context, []
        for start in range(0, len(samples), step):
            lo, hi = max(0, start - context), min(len(samples), start + step + context)
            logits = self._run(audio_inputs(self.extractor, samples[lo:hi], self.input_names))
            per_sample = logits.shape[0] / (hi - lo)
            first = int(round((start - lo) * per_sample))
            last = int(round((min(start + step, len(samples)) - lo) * per_sample))
            pieces.append(logits[first:last])
        return np.concatenate(pieces), len(pieces)

    def _run(self, feed: dict[str, Any]) -> np.ndarray:
        return self.session.run(feed, ["logits"])["logits"][0]

    def transcribe(self, samples: np.ndarray) -> Transcript:
        from edgekit.models.ctc import greedy_ids, transcript

        logits, windows = self.logits(samples)
        blank = int(self.info["blank_token_id"])
        text = transcript(self.tokenizer, logits, blank)
        return Transcript(text, greedy_ids(logits, blank), len(samples) / self.rate, windows)

    def transcribe_file(self, path: Path | str) -> Transcript:
        from edgekit.audio import read_wav

        return self.transcribe(read_wav(path, self.rate))
