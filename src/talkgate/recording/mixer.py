"""Two tracks (caller, agent) on one timeline, mixed as they arrive. Pure: the caller passes ``now``.

Placement: a chunk continues its track where the track's last chunk ended, unless the track has
been idle for longer than ``gap_tolerance_s``; then it starts at its arrival time, so the silence
of a push-to-talk gap or of the agent thinking is kept, not squeezed out. The tolerance absorbs
network jitter, which would otherwise cut tiny holes into continuous speech.

Output: audio is handed out (``drain``) once no later chunk can land before it: up to the earliest
point where any track could still place audio. A track may run ahead of that point (an agent's
speech arrives faster than real time) by at most ``max_lead_s``; beyond it the mixer commits the
oldest audio anyway, so memory stays bounded whatever the call length. Audio that would land
before committed audio is placed right after it instead (only an interruption during a long burst
can do that).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from talkgate.errors import AudioError, ErrorCode
from talkgate.protocol.audio import PCM16_MAX, PCM16_MIN

CALLER = 0
AGENT = 1


class TimelineMixer:
    def __init__(
        self,
        *,
        sample_rate: int = 16000,
        channels: int = 1,
        tracks: int = 2,
        start_s: float = 0.0,
        gap_tolerance_s: float = 0.25,
        max_lead_s: float = 2.0,
        capacity_frames: int | None = None,
    ) -> None:
        if channels not in (1, tracks):
            raise ValueError("channels is 1 (mixed) or one per track (side by side)")
        self.sample_rate = sample_rate
        self.channels = channels
        self._origin = start_s
        self._tolerance = int(gap_tolerance_s * sample_rate)
        self._max_lead = int(max_lead_s * sample_rate)
        # The buffer never grows past this (``Recorder`` commits the oldest audio first); None: the
        # lead plus a chunk's worth.
        self.capacity = capacity_frames or self._max_lead + sample_rate // 4
        self._cursor = [0] * tracks  # frame where each track's next contiguous chunk goes
        self._emitted = 0  # frames handed out so far; _buf[0] is this frame
        # 16-bit, as the output: a frame holds at most two voices (a track never overlaps itself),
        # so clipping their sum when the second is placed is exactly clipping the mix once.
        self._buf: npt.NDArray[np.int16] = np.zeros((0, channels), dtype=np.int16)
        self._live = 0  # frames of _buf in use

    @property
    def emitted_frames(self) -> int:
        return self._emitted

    @property
    def live_frames(self) -> int:
        """Frames of audio held, from the next frame to hand out on."""
        return self._live

    @property
    def buffered_bytes(self) -> int:
        """The mixing buffer's size: the most audio ahead of the output, at most the lead."""
        return int(self._buf.nbytes)

    @property
    def end_frame(self) -> int:
        """The end of the latest audio placed on any track."""
        return max(self._cursor)

    def _frame(self, now_s: float) -> int:
        return max(0, round((now_s - self._origin) * self.sample_rate))

    def place(self, track: int, frames: int, now_s: float) -> int:
        """Where a chunk of ``frames`` arriving at ``now_s`` starts on the timeline."""
        now = self._frame(now_s)
        cursor = self._cursor[track]
        idle = now - cursor > self._tolerance
        start = now if idle else cursor
        if track == AGENT and idle:
            # The agent answers what it has heard: a new reply never starts over caller audio
            # already received (which may run ahead of real time when sent in a burst).
            start = max(start, self._cursor[CALLER])
        return max(start, self._emitted)

    def add(self, track: int, pcm: bytes, now_s: float) -> int:
        """Put a PCM16 chunk on ``track``; returns the frame it starts at."""
        if len(pcm) % 2:
            raise AudioError("PCM16 chunk has an odd number of bytes", code=ErrorCode.BAD_AUDIO)
        samples = np.frombuffer(pcm, dtype="<i2")
        start = self.place(track, len(samples), now_s)
        end = start + len(samples)
        self._reserve(end - self._emitted)
        self._live = max(self._live, end - self._emitted)
        channel = 0 if self.channels == 1 else track
        region = self._buf[start - self._emitted : end - self._emitted, channel]
        # Every track's audio lies before its cursor: at or past all of them, the region is silent.
        # Most of a push-to-talk call has one voice at a time: a copy, not a sum and a clip.
        if start < max(self._cursor):
            np.clip(region.astype(np.int32) + samples, PCM16_MIN, PCM16_MAX, out=region, casting="unsafe")
        else:
            region[:] = samples
        self._cursor[track] = max(self._cursor[track], end)
        return start

    def _reserve(self, frames: int) -> None:
        if frames > len(self._buf):
            # Room for the lead plus a chunk, so a steady stream never reallocates.
            size = max(frames, min(2 * len(self._buf), self.capacity))
            grown = np.zeros((size, self.channels), dtype=np.int16)
            grown[: self._live] = self._buf[: self._live]
            self._buf = grown

    def horizon(self, now_s: float) -> int:
        """The frame before which no chunk can land any more."""
        now = self._frame(now_s)
        earliest = min(c if now - c <= self._tolerance else now for c in self._cursor)
        return max(earliest, self.end_frame - self._max_lead)

    def drain(self, now_s: float) -> bytes:
        """Mixed PCM16 that is final: everything up to the horizon (silence where nobody spoke)."""
        return self._emit(self.horizon(now_s))

    def finish(self) -> bytes:
        """Everything left, up to the end of the last audio placed."""
        return self._emit(self.end_frame)

    def release(self) -> None:
        """Free the buffer (nothing is placed or handed out after this)."""
        self._buf = np.zeros((0, self.channels), dtype=np.int16)
        self._live = 0

    def take(self, upto: int, max_audio_frames: int | None = None) -> tuple[bytes, int]:
        """Hand out the frames up to ``upto``, but at most ``max_audio_frames`` of those the
        buffer holds: (their PCM16, then how many frames of silence follow it). Silence past the
        held audio (a late pass over a quiet call) is counted, never materialised."""
        count = upto - self._emitted
        if count <= 0:
            return b"", 0
        used = min(count, self._live)
        if max_audio_frames is not None and used > max_audio_frames:
            used = count = max(0, max_audio_frames)
        pcm = self._buf[:used].astype("<i2", copy=False).tobytes()
        keep = self._live - used
        self._buf[:keep] = self._buf[used : self._live]  # memmove of the lead only
        self._buf[keep : self._live].fill(0)
        self._live = keep
        self._emitted += count
        return pcm, count - used

    def _emit(self, upto: int) -> bytes:
        pcm, silence = self.take(upto)
        return pcm + bytes(2 * self.channels * silence) if silence else pcm
