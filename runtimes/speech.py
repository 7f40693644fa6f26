"""Speech front end for encoder-decoder artifacts that read audio (Whisper): WAV -> log-mel
features with the artifact's own feature-extractor config, and the decoder prompt

    <|startoftranscript|> <|language|> <|transcribe|> or <|translate|> <|notimestamps|>

with the language detected from the audio when none is given (the most likely language token
after <|startoftranscript|>, as Whisper does)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import InputError


@dataclass
class SpeechPrompt:
    start: int
    languages: dict[str, int] = field(default_factory=dict)
    """``<|en|>`` -> token id; empty for English-only or untagged models."""
    tasks: dict[str, int] = field(default_factory=dict)
    no_timestamps: int | None = None
    suppress_tokens: tuple[int, ...] = ()
    begin_suppress_tokens: tuple[int, ...] = ()

    @classmethod
    def from_artifact(cls, artifact: Path, start: int) -> "SpeechPrompt":
        path = Path(artifact) / "generation_config.json"
        gen: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
        return cls(
            start=start,
            languages={k: int(v) for k, v in (gen.get("lang_to_id") or {}).items()},
            tasks={k: int(v) for k, v in (gen.get("task_to_id") or {}).items()},
            no_timestamps=gen.get("no_timestamps_token_id"),
            suppress_tokens=tuple(int(t) for t in gen.get("suppress_tokens") or ()),
            begin_suppress_tokens=tuple(int(t) for t in gen.get("begin_suppress_tokens") or ()),
        )

    def language_token(self, language: str) -> int:
        key = language if language.startswith("<|") else f"<|{language.lower()}|>"
        if key not in self.languages:
            from edgekit.errors import did_you_mean

            raise InputError(
                f"this model does not know the language '{language}'",
                did_you_mean(key.strip("<|>"), [k.strip("<|>") for k in self.languages]),
            )
        return self.languages[key]

    def detect(self, start_logits: np.ndarray) -> tuple[str, int]:
        """The most likely language token given the logits after <|startoftranscript|>."""
        names, ids = list(self.languages), np.asarray(list(self.languages.values()))
        best = int(np.argmax(start_logits[ids]))
        return names[best].strip("<|>"), int(ids[best])

    def tokens(self, language_id: int | None, translate: bool = False) -> list[int]:
        prompt = [self.start]
        if language_id is not None:
            prompt.append(language_id)
        task = "translate" if translate else "transcribe"
        if self.tasks:
            prompt.append(self.tasks[task])
        elif translate:
            raise InputError("this model has no translate task", "drop --translate")
        if self.no_timestamps is not None:
            prompt.append(int(self.no_timestamps))
        return prompt


def audio_features(artifact: Path, samples: np.ndarray) -> dict[str, np.ndarray]:
    """``input_features`` [1, mels, frames] for mono 16 kHz ``samples`` (at most one window, 30 s for Whisper)."""
    from transformers import AutoFeatureExtractor

    if not (Path(artifact) / "preprocessor_config.json").is_file():
        raise InputError(
            f"'{artifact}' has no preprocessor_config.json, so edgekit cannot compute its audio features",
            "export again from a model folder that has one",
        )
    extractor = AutoFeatureExtractor.from_pretrained(str(artifact))
    rate = int(extractor.sampling_rate)
    limit = float(getattr(extractor, "chunk_length", 30))
    seconds = len(samples) / rate
    if seconds > limit:
        raise InputError(
            f"the audio is {seconds:.1f} s; this model reads at most {limit:.0f} s at a time",
            f"split it into pieces of {limit:.0f} s or less",
        )
    features = extractor(samples, sampling_rate=rate, return_tensors="np")["input_features"]
    return {"input_features": np.asarray(features, dtype=np.float32)}
