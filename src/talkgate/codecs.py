"""Compressed audio → PCM16 with PyAV (FFmpeg's libraries): the provider's MP3 recordings, and the
WebM/Ogg Opus or AAC that browsers' MediaRecorder and mobile recorders make (the app's own audio).

``StreamDecoder`` decodes one push-to-talk turn as it arrives: a worker thread runs FFmpeg's demuxer
over a blocking pipe the event loop feeds, so no decoding happens on the loop and the PCM comes out
while the user is still talking. MP4/M4A keeps its index at the end of the file, so those turns are
decoded at release from the whole turn (bounded by ``max_bytes``).
"""

from __future__ import annotations

import io
import threading
from typing import Any

import av
import numpy as np

from talkgate.errors import AudioError, ErrorCode
from talkgate.protocol.app_events import InputCodec

CONTAINER_FORMAT = {
    InputCodec.WEBM_OPUS: "matroska",
    InputCodec.OGG_OPUS: "ogg",
    InputCodec.AAC: "aac",
    InputCodec.MP4_AAC: "mp4",
}
MAX_TURN_BYTES = 8 * 1024 * 1024  # about 30 minutes of 32 kbit/s Opus
# Start decoding after a few kilobytes instead of probing megabytes (ADTS would wait for the end).
STREAM_OPTIONS = {"probesize": "2048", "analyzeduration": "0"}


def _pcm(frames: list[Any]) -> bytes:
    return b"".join(np.ascontiguousarray(f.to_ndarray()).astype("<i2").tobytes() for f in frames)


def _decode(source: Any, fmt: str | None, rate: int, out: Any, options: dict[str, str] | None = None) -> None:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    with av.open(source, mode="r", format=fmt, options=options or {}) as container:
        if not container.streams.audio:
            raise AudioError("the stream holds no audio", code=ErrorCode.BAD_FORMAT)
        for frame in container.decode(container.streams.audio[0]):
            out(_pcm(resampler.resample(frame)))
    out(_pcm(resampler.resample(None)))


def decode_file(data: bytes, rate: int = 16000, fmt: str | None = None) -> bytes:
    """A whole compressed file (MP3, WAV, WebM, …) as PCM16 mono at ``rate``."""
    chunks: list[bytes] = []
    try:
        _decode(io.BytesIO(data), fmt, rate, chunks.append)
    except (av.FFmpegError, ValueError, IndexError) as exc:
        raise AudioError(f"could not decode the audio: {exc}", code=ErrorCode.BAD_AUDIO) from exc
    return b"".join(chunks)


class _Pipe(io.RawIOBase):
    """A read end that blocks until the event loop has fed bytes or closed the stream."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._eof = False
        self._cv = threading.Condition()

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        with self._cv:
            while not self._buf and not self._eof:
                self._cv.wait()
            n = min(len(target), len(self._buf))
            target[:n] = self._buf[:n]
            del self._buf[:n]
            return n

    def feed(self, data: bytes) -> None:
        with self._cv:
            self._buf += data
            self._cv.notify()

    def contents(self) -> bytes:
        """Everything fed and not yet read (the whole turn, when no reader ran)."""
        with self._cv:
            return bytes(self._buf)

    def end(self) -> None:
        with self._cv:
            self._eof = True
            self._cv.notify()


class StreamDecoder:
    """One turn's compressed stream → PCM16 mono at ``rate``, incrementally."""

    def __init__(self, codec: InputCodec, rate: int = 16000, *, max_bytes: int = MAX_TURN_BYTES) -> None:
        self.codec = codec
        self._fmt = CONTAINER_FORMAT[codec]
        self._rate = rate
        self._max_bytes = max_bytes
        self._fed = 0
        self._out = bytearray()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self._whole = codec is InputCodec.MP4_AAC
        self._pipe = _Pipe()
        self._thread: threading.Thread | None = None
        if not self._whole:
            self._thread = threading.Thread(target=self._run, name=f"decode-{codec.value}", daemon=True)
            self._thread.start()

    def _emit(self, pcm: bytes) -> None:
        with self._lock:
            self._out += pcm

    def _run(self) -> None:
        try:
            _decode(self._pipe, self._fmt, self._rate, self._emit, STREAM_OPTIONS)
        except BaseException as exc:  # reported to the event loop by take()/finish()
            self._error = exc
        finally:
            self._pipe.end()  # unblock nobody, but make late feeds harmless

    def _raise(self) -> None:
        if self._error is not None:
            raise AudioError(
                f"could not decode the {self.codec.value} stream: {self._error}", code=ErrorCode.BAD_AUDIO
            )

    def feed(self, data: bytes) -> None:
        """Hand over the next bytes of the stream (never blocks)."""
        self._raise()
        self._fed += len(data)
        if self._fed > self._max_bytes:
            raise AudioError("the compressed turn is too long", code=ErrorCode.CHUNK_TOO_LARGE)
        self._pipe.feed(data)

    def take(self) -> bytes:
        """The PCM decoded so far (possibly empty)."""
        self._raise()
        with self._lock:
            pcm = bytes(self._out)
            self._out.clear()
        return pcm

    def finish(self, timeout: float = 10.0) -> bytes:
        """Blocking: end the stream, wait for the decoder, return the rest. Run in a worker thread."""
        if self._whole:
            try:
                return decode_file(self._pipe.contents(), self._rate, self._fmt)
            except AudioError as exc:
                raise AudioError(
                    f"could not decode the {self.codec.value} stream: {exc.message}", code=ErrorCode.BAD_AUDIO
                ) from exc
        self._pipe.end()
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AudioError(f"decoding the {self.codec.value} stream timed out", code=ErrorCode.BAD_AUDIO)
        return self.take()

    def abort(self) -> None:
        self._pipe.end()
