"""One live call's recording: chunks → timeline mixer → WAV in the spool folder, as they arrive.

On the relay's hot path a chunk is only noted with its arrival time (a list append). Every
``flush_interval_s`` one timer per event loop (``FlushClock``) mixes what each live recording has
noted and hands the audio that has become final to the process's disk thread (``disk.DISK``) as
one job for all recordings; the loop never waits for a write. A recording that receives audio
faster than real time (an agent's reply in a burst) is mixed at once when ``WRITE_BLOCK`` is
noted. A killed process therefore loses at most about ``flush_interval_s`` of audio.

The clock lives in ``flush_clock``, the relay's feed in ``relay_tap``; both names are
re-exported here.

Memory per recording: the mixer's lead (``max_lead_s``) plus at most ``WRITE_BLOCK`` noted and
``MAX_PENDING`` bytes on their way to the disk; beyond that ``add`` waits for the disk
(backpressure) rather than grow.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from talkgate.errors import AudioError, ErrorCode, StorageError
from talkgate.recording.disk import DISK, DiskThread
from talkgate.recording.flush_clock import FlushClock
from talkgate.recording.mixer import TimelineMixer
from talkgate.recording.relay_tap import RelayTap
from talkgate.recording.wav import WavWriter

log = logging.getLogger("talkgate.recording")

# Re-exported: callers import the recorder's companions from here.
__all__ = ["MAX_PENDING", "WRITE_BLOCK", "Finished", "FlushClock", "Recorder", "RelayTap"]

WRITE_BLOCK = 32_000  # a second of 16 kHz mono noted before the next tick: mix it now
MAX_PENDING = 64_000  # two seconds on their way to the disk: add() waits beyond this

Chunk = tuple[int, bytes, float]  # track, PCM16, arrival time


@dataclass(frozen=True, slots=True)
class Finished:
    path: Path
    data_bytes: int
    sample_rate: int
    channels: int

    @property
    def duration_ms(self) -> int:
        return self.data_bytes * 1000 // (2 * self.channels * self.sample_rate)


class Recorder:
    def __init__(
        self,
        path: Path,
        *,
        sample_rate: int = 16000,
        channels: int = 1,
        clock: Callable[[], float] = time.monotonic,
        flush_interval_s: float = 0.5,
        gap_tolerance_s: float = 0.25,
        max_lead_s: float = 2.0,
        disk: DiskThread = DISK,
    ) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.channels = channels
        self._clock = clock
        self._flush_interval = flush_interval_s
        self._disk = disk
        self._mixer = TimelineMixer(
            sample_rate=sample_rate,
            channels=channels,
            start_s=clock(),
            gap_tolerance_s=gap_tolerance_s,
            max_lead_s=max_lead_s,
        )
        self._inbox: list[Chunk] = []
        self._inbox_bytes = 0
        # Called on the event loop once, when the disk fails (the recorder stops recording).
        self.on_error: Callable[[BaseException], object] | None = None
        # Bytes handed to the disk thread, and bytes it has written: each counter has one writer
        # (the loop, the thread), so their difference is read without a lock.
        self._queued = 0
        self._written = 0
        self._waiting = False
        self._writer: WavWriter | None = None
        self._room = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._flush_clock: FlushClock | None = None
        self._closing = False
        self.error: BaseException | None = None
        self.chunks = 0
        self.peak_memory = 0

    @property
    def memory_bytes(self) -> int:
        """What this recording holds in memory now: the mixer's buffer, the chunks noted and the
        audio on its way to the disk."""
        return self._mixer.buffered_bytes + self._backlog()

    def _backlog(self) -> int:
        return self._inbox_bytes + self._queued - self._written

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._writer = await self._disk.call(
            functools.partial(WavWriter, self.path, sample_rate=self.sample_rate, channels=self.channels)
        )
        self._flush_clock = FlushClock.join(self, self._loop, self._flush_interval)

    async def add(self, track: int, pcm: bytes) -> None:
        if self._closing or self.error is not None or not pcm:
            return
        if len(pcm) % 2:
            raise AudioError("PCM16 chunk has an odd number of bytes", code=ErrorCode.BAD_AUDIO)
        self._inbox.append((track, pcm, self._clock()))
        self._inbox_bytes += len(pcm)
        self.chunks += 1
        self.peak_memory = max(self.peak_memory, self.memory_bytes)
        if self._inbox_bytes >= WRITE_BLOCK:
            self._flush()
        while self._backlog() >= MAX_PENDING and self.error is None and not self._closing:
            if self._inbox:
                self._flush()  # what waits must be on its way to the disk for room to come
            self._room.clear()
            self._waiting = True
            if self._backlog() >= MAX_PENDING:  # re-read: the thread may have written meanwhile
                await self._room.wait()
            self._waiting = False

    # --- on the disk thread ---

    def _append(self, pcm: bytes) -> None:
        if self.error is None:
            assert self._writer is not None
            try:
                self._writer.write(pcm)
            except OSError as exc:
                self.error = exc  # set here: later jobs must not write past the hole
                log.error("recording %s: writing failed: %s", self.path.name, exc)
                if self._loop is not None:
                    self._loop.call_soon_threadsafe(self._stopped)
        self._written += len(pcm)
        if self._waiting and self._loop is not None:
            self._loop.call_soon_threadsafe(self._room.set)

    # --- on the loop ---

    def _stopped(self) -> None:
        """Once ``error`` is set: stop recording (what reached the disk stays), tell ``on_error``."""
        self._inbox, self._inbox_bytes = [], 0
        self._room.set()
        self._leave_clock()
        if self.on_error is not None and self.error is not None:
            self.on_error(self.error)

    def _mix(self, *, final: bool = False) -> bytes:
        """Mix what was noted; returns the audio that is final now (counted as queued)."""
        batch, self._inbox = self._inbox, []
        self._inbox_bytes = 0
        if self.error is not None:
            return b""
        try:
            for track, pcm, arrived in batch:
                self._mixer.add(track, pcm, arrived)
            out = self._mixer.finish() if final else self._mixer.drain(self._clock())
        except Exception as exc:  # a bug here stops this recording, not the call or the others
            log.exception("recording %s: mixing failed", self.path.name)
            self.error = exc
            self._stopped()
            return b""
        self._queued += len(out)
        if self._backlog() < MAX_PENDING:
            self._room.set()
        return out

    def _flush(self, *, final: bool = False) -> None:
        if out := self._mix(final=final):
            self._disk.submit(self._append, out)

    def _leave_clock(self) -> None:
        if self._flush_clock is not None:
            self._flush_clock.leave(self)
            self._flush_clock = None

    def _stop_clock(self) -> None:
        self._closing = True
        self._room.set()
        self._leave_clock()

    async def close(self) -> Finished:
        """Write what is left, patch the header; the file is then a complete WAV."""
        self._stop_clock()
        assert self._writer is not None
        if self.error is None:
            self._flush(final=True)
        self._release()
        try:
            # After every append submitted before it, on the same thread.
            data_bytes = await self._disk.call(self._finalize)
        except OSError as exc:
            self.error = self.error or exc
        if self.error is not None:
            await self.abort()
            raise StorageError(f"recording failed: {self.error}")
        return Finished(self.path, data_bytes, self.sample_rate, self.channels)

    def _release(self) -> None:
        """Once nothing more is mixed: drop the reference back to the relay (whose tap points here:
        a cycle) and free the mixing buffer now. A serving process collects cycles only every few
        minutes (talkgate/fastpaths/gc_pacing.py), and each ended call's buffer would wait for it."""
        self.on_error = None
        self._mixer.release()

    def _finalize(self) -> int:
        assert self._writer is not None
        if self.error is not None:
            return 0
        return self._writer.finalize()

    async def abort(self) -> None:
        """Stop without finalising; the file stays for the start-up repair."""
        self._stop_clock()
        self._release()
        if self._writer is not None:
            await self._disk.call(self._writer.close)
