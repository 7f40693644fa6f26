"""WAV reading (sample widths, channels, resampling) and eSpeak NG speech synthesis."""

from __future__ import annotations

import wave

import numpy as np
import pytest

from edgekit.audio import read_wav, resample, speak, write_wav
from edgekit.errors import InputError


def _tone(rate: int, seconds: float = 0.5, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


@pytest.mark.parametrize("width", [1, 2, 3, 4])
def test_read_wav_decodes_every_pcm_width_and_averages_channels(tmp_path, width):
    tone = _tone(16000)
    scale = float(2 ** (8 * width - 1) - 1)
    ints = np.round(tone * scale).astype(np.int64)
    stereo = np.stack([ints, ints], axis=1).ravel()  # two equal channels: the mean is the tone
    if width == 1:
        raw = (stereo + 128).astype(np.uint8).tobytes()
    elif width == 3:
        raw = b"".join(int(v).to_bytes(3, "little", signed=True) for v in stereo)
    else:
        raw = stereo.astype({2: "<i2", 4: "<i4"}[width]).tobytes()
    path = tmp_path / f"tone{width}.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(width)
        w.setframerate(16000)
        w.writeframes(raw)
    got = read_wav(path, 16000)
    assert got.dtype == np.float32 and got.shape == tone.shape
    assert np.abs(got - tone).max() < (2.0 / 128 if width == 1 else 1e-4)


def test_resample_keeps_a_tone_at_its_frequency(tmp_path):
    tone = _tone(22050, seconds=1.0, hz=440.0)
    write_wav(tmp_path / "t.wav", tone, 22050)
    got = read_wav(tmp_path / "t.wav", 16000)
    assert len(got) == 16000
    peak_hz = np.argmax(np.abs(np.fft.rfft(got))) * 16000 / len(got)
    assert abs(peak_hz - 440.0) <= 1.0
    assert np.array_equal(resample(tone, 22050, 22050), tone)


def test_bad_audio_files_fail_clearly(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_wav(tmp_path / "none.wav")
    (tmp_path / "x.wav").write_bytes(b"RIFF....WAVEjunk")
    with pytest.raises(InputError, match="not a PCM WAV file"):
        read_wav(tmp_path / "x.wav")
    write_wav(tmp_path / "empty.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(InputError, match="holds no audio"):
        read_wav(tmp_path / "empty.wav")


def test_speak_synthesises_speech_with_espeak_ng():
    samples, rate = speak("Hello world.")
    assert rate == 22050 and samples.dtype == np.float32
    assert 0.5 < len(samples) / rate < 3.0  # two words
    assert 0.05 < np.abs(samples).max() <= 1.0
    with pytest.raises(InputError, match="no voice"):
        speak("hello", voice="no-such-voice")
