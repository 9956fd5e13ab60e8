"""Real encoded audio for tests, made with PyAV (the same FFmpeg libraries talkgate decodes with)."""

from __future__ import annotations

import io

import av
import numpy as np

ENCODERS = {
    "webm_opus": ("webm", "libopus", 48000),
    "ogg_opus": ("ogg", "libopus", 48000),
    "aac": ("adts", "aac", 16000),
    "mp4_aac": ("mp4", "aac", 16000),
    "mp3": ("mp3", "libmp3lame", 16000),
}


def encode(pcm16_16k: bytes, kind: str) -> bytes:
    fmt, codec, rate = ENCODERS[kind]
    out = io.BytesIO()
    with av.open(out, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        frame_size = stream.codec_context.frame_size or 1024
        resampler = av.AudioResampler(
            format=stream.codec_context.format, layout="mono", rate=rate, frame_size=frame_size
        )
        source = av.AudioFrame.from_ndarray(
            np.frombuffer(pcm16_16k, dtype="<i2").reshape(1, -1), format="s16", layout="mono"
        )
        source.sample_rate = 16000
        for frame in [*resampler.resample(source), *resampler.resample(None)]:
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def speechlike(ms: int, rate: int = 16000) -> bytes:
    """A deterministic voiced signal (a gliding tone with harmonics, syllable-like envelope)."""
    t = np.arange(int(rate * ms / 1000)) / rate
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 6))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 3 * t)
    return (voice * envelope * 6000).astype("<i2").tobytes()


def best_correlation(reference: bytes, candidate: bytes, max_lag: int = 8000) -> tuple[float, int]:
    """Pearson r of two PCM16 signals after aligning them: the lag maximises the cross-correlation
    (by FFT), then r is computed over the overlap. A positive lag: ``candidate`` starts later."""
    a = np.frombuffer(reference, dtype="<i2").astype(np.float64)
    b = np.frombuffer(candidate, dtype="<i2").astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    xcorr = np.fft.irfft(np.fft.rfft(b, size) * np.conj(np.fft.rfft(a, size)), size)
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    lag = int(lags[np.argmax(xcorr[lags])])
    x, y = a[max(0, -lag) :], b[max(0, lag) :]
    n = min(len(x), len(y))
    return float(np.corrcoef(x[:n], y[:n])[0, 1]), lag


def speech(ms: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    t = np.arange(16 * ms)
    return (np.sin(t / (3 + seed)) * 8000 + rng.normal(0, 500, len(t))).astype("<i2").tobytes()
