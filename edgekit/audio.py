"""Audio in: WAV files read with the standard library, resampled to the model's rate; and speech
synthesised with eSpeak NG (the ``espeakng-loader`` wheel ships libespeak-ng) for tests and demos."""

from __future__ import annotations

import wave
from math import gcd
from pathlib import Path

import numpy as np

from edgekit.errors import InputError, require


def sampling_rate(folder: Path | str) -> int:
    """The rate a model folder's (or artifact's) ``preprocessor_config.json`` reads audio at; 16 kHz without one."""
    from edgekit.artifacts import read_json

    path = Path(folder) / "preprocessor_config.json"
    return int(read_json(path, "fix the file").get("sampling_rate", 16000)) if path.is_file() else 16000


def read_wav(path: Path | str, rate: int = 16000) -> np.ndarray:
    """Mono float32 samples in [-1, 1] at ``rate`` Hz from a PCM WAV file (8/16/24/32-bit, any channels)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"audio file '{path}' does not exist", "pass a WAV file with --audio")
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, source_rate, frames = (
                w.getnchannels(),
                w.getsampwidth(),
                w.getframerate(),
                w.getnframes(),
            )
            raw = w.readframes(frames)
    except (wave.Error, EOFError, ValueError, OverflowError) as exc:
        raise InputError(
            f"'{path}' is not a PCM WAV file ({exc})",
            "convert it first, e.g. ffmpeg -i IN -ar 16000 -ac 1 OUT.wav",
        ) from exc
    if width not in (1, 2, 3, 4) or channels < 1 or source_rate < 1:
        raise InputError(
            f"'{path}' has {8 * width}-bit samples, {channels} channel(s) at {source_rate} Hz; edgekit reads 8/16/24/32-bit PCM",
            "convert it first, e.g. ffmpeg -i IN -ar 16000 -ac 1 OUT.wav",
        )
    raw = raw[: len(raw) // (width * channels) * (width * channels)]  # a file cut short: its whole frames
    if frames == 0 or not raw:
        raise InputError(f"'{path}' holds no audio samples", "pass a WAV file with speech in it")
    if width == 3:  # 24-bit: widen to 32-bit little-endian
        bytes3 = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        samples = (np.pad(bytes3, ((0, 0), (1, 0))).view("<i4").ravel()).astype(np.float32) / 2**31
    else:
        dtype = {1: np.uint8, 2: "<i2", 4: "<i4"}[width]
        samples = np.frombuffer(raw, dtype).astype(np.float32)
        samples = (samples - 128.0) / 128.0 if width == 1 else samples / float(2 ** (8 * width - 1))
    samples = samples.reshape(-1, channels).mean(axis=1)
    return resample(samples, source_rate, rate)


def resample(samples: np.ndarray, source_rate: int, rate: int) -> np.ndarray:
    """Polyphase resampling (an anti-aliasing FIR), as audio toolkits do."""
    if source_rate == rate:
        return np.ascontiguousarray(samples, dtype=np.float32)
    signal = require("scipy.signal", "resampling audio", "audio")
    g = gcd(int(source_rate), int(rate))
    return signal.resample_poly(samples, rate // g, source_rate // g).astype(np.float32)


def write_wav(path: Path | str, samples: np.ndarray, rate: int) -> None:
    """16-bit mono PCM."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(rate))
        w.writeframes(pcm.tobytes())


_ESPEAK: tuple | None = None


def _espeak() -> tuple:
    """libespeak-ng, started once per process (starting it again on every call corrupts its state
    after a few sentences), with its rate and the list its callback fills."""
    global _ESPEAK
    if _ESPEAK is None:
        import ctypes

        loader = require("espeakng_loader", "synthesising speech", "examples")
        lib = ctypes.CDLL(loader.get_library_path())
        rate = lib.espeak_Initialize(
            2, 0, loader.get_data_path().encode(), 0
        )  # 2: synchronous, to the callback
        if rate <= 0:
            raise InputError("eSpeak NG did not start", "reinstall espeakng-loader")
        chunks: list[np.ndarray] = []
        callback_type = ctypes.CFUNCTYPE(
            ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
        )

        def collect(wav, count, _events):
            if wav and count > 0:
                chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
            return 0

        callback = callback_type(collect)  # kept alive with the library below
        lib.espeak_SetSynthCallback(callback)
        _ESPEAK = (lib, int(rate), chunks, callback)
    return _ESPEAK[:3]


def speak(text: str, voice: str = "en", words_per_minute: int = 150) -> tuple[np.ndarray, int]:
    """``text`` spoken by eSpeak NG: float32 mono samples and their rate (22050 Hz)."""
    import ctypes

    lib, rate, chunks = _espeak()
    chunks.clear()
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise InputError(f"eSpeak NG has no voice '{voice}'", "use a language code such as en, de or fr")
    lib.espeak_SetParameter(1, int(words_per_minute), 0)  # 1: espeakRATE
    data = text.encode("utf-8")
    lib.espeak_Synth.argtypes = [
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1, None, None)  # POS_CHARACTER, espeakCHARS_UTF8
    lib.espeak_Synchronize()
    if not chunks:
        raise InputError(f"eSpeak NG produced no audio for {text!r}", "pass some words to speak")
    return np.concatenate(chunks).astype(np.float32) / 32768.0, int(rate)
