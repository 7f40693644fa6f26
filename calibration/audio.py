"""Audio data for speech encoders: WAV files (a folder of them, or one file), read at the model's
rate and normalised by its own feature extractor, as calibration samples or held-out utterances.

A calibration sample is a window of at most ``CALIB_WINDOW_S`` seconds (long files give several),
so a long recording cannot make calibration slow; held-out files are run whole (bench and the
accuracy guard compare transcripts)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from edgekit.errors import InputError

AUDIO_SUFFIXES = (".wav",)
CALIB_WINDOW_S = 10.0


def audio_files(path: Path | str) -> list[Path]:
    path = Path(path).expanduser()
    if path.is_file():
        return [path] if path.suffix.lower() in AUDIO_SUFFIXES else []
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def require_audio(path: Path | str, option: str) -> list[Path]:
    files = audio_files(path)
    if not files:
        raise InputError(
            f"{option} '{path}' holds no WAV files but this model reads audio",
            "pass a .wav file or a folder of them (16-bit PCM; other rates are resampled)",
        )
    return files


def audio_calibration(model_dir: Path, path: Path, input_names: list[str], size: int, seed: int = 0):
    """Up to ``size`` windows of at most 10 s drawn (seeded) from the WAV files, batch 1 each."""
    from edgekit.audio import read_wav
    from edgekit.calibration.dataset import CalibrationSet, check_size
    from edgekit.models.ctc import audio_inputs, load_extractor

    check_size(size)
    files = require_audio(path, "--calib")
    extractor = load_extractor(model_dir)
    rate = int(extractor.sampling_rate)
    window = int(CALIB_WINDOW_S * rate)
    pieces = []
    for file in files:
        samples = read_wav(file, rate)
        pieces += [
            samples[i : i + window] for i in range(0, len(samples), window) if len(samples) - i >= rate // 10
        ]
    random.Random(seed).shuffle(pieces)
    feeds = [audio_inputs(extractor, piece, input_names) for piece in pieces[:size]]
    details = {
        "seed": seed,
        "files": len(files),
        "window_s": CALIB_WINDOW_S,
        "windows_available": len(pieces),
        "seconds": round(sum(len(p) for p in pieces[:size]) / rate, 2),
    }
    return CalibrationSet(feeds, "audio", str(path), details)


def audio_eval_feeds(
    model_dir: Path, path: Path, input_names: list[str], limit: int = 64
) -> list[dict[str, Any]]:
    """One feed per WAV file (batch 1, the whole file), the first ``limit`` files in name order."""
    from edgekit.audio import read_wav
    from edgekit.models.ctc import audio_inputs, load_extractor

    extractor = load_extractor(model_dir)
    rate = int(extractor.sampling_rate)
    return [
        audio_inputs(extractor, read_wav(f, rate), input_names)
        for f in require_audio(path, "--eval-data")[:limit]
    ]
