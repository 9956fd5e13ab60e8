"""MP3 encoding of PCM16 mono with PyAV (the provider's recordings are MP3)."""

from __future__ import annotations

import io

import av
import numpy as np


def encode_mp3(pcm: bytes, sample_rate: int) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=sample_rate, layout="mono")
        samples = np.frombuffer(pcm, dtype="<i2")
        if len(samples):
            frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate = sample_rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()
