"""The probe conversation's "speech": a vowel-like sound (a 120 Hz voice with two formants, spoken
in syllables) that a voice-activity detector takes for a voice, where a plain tone may not. Pure."""

from __future__ import annotations

import numpy as np

from talkgate.protocol.audio import PCM_16000, AudioFormat, convert

F0 = 120.0  # Hz, a low voice
FORMANTS = ((730.0, 90.0), (1090.0, 110.0))  # "ah": centre and bandwidth, Hz
SYLLABLES_PER_S = 4.0


def vowel(fmt: AudioFormat, ms: float, amplitude: float = 0.4) -> bytes:
    """``ms`` milliseconds of the probe voice in ``fmt``."""
    rate = PCM_16000.sample_rate
    t = np.arange(int(rate * ms / 1000.0)) / rate
    signal = np.zeros_like(t)
    for k in range(1, int(3500 / F0)):
        hz = k * F0
        # Each harmonic weighted by its nearness to a formant, as a vocal tract shapes a voice.
        weight = sum(1.0 / (1.0 + ((hz - centre) / width) ** 2) for centre, width in FORMANTS) + 0.02
        signal += weight * np.sin(2 * np.pi * hz * t) / k
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * SYLLABLES_PER_S * t - np.pi / 2)
    signal *= envelope
    peak = float(np.max(np.abs(signal))) or 1.0
    pcm = (signal / peak * amplitude * 32767).astype("<i2").tobytes()
    return convert(pcm, PCM_16000, fmt)
