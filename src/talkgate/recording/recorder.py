"""One live call's recording: chunks → timeline mixer → WAV in the spool folder, as they arrive.

On the relay's hot path a chunk is only noted with its arrival time (a list append). Every
``flush_interval_s`` one timer per event loop (``FlushClock``) mixes what each live recording has
noted and hands the audio that has become final to the process's disk thread (``disk.DISK``) as
one job for all recordings; the loop never waits for a write. A recording that receives audio
faster than real time (an agent's reply in a burst) is mixed at once when ``WRITE_BLOCK`` is
noted. A killed process therefore loses at most about ``flush_interval_s`` of audio.

The clock lives in ``flush_clock``, the relay's feed in ``relay_tap``; both names are
re-exported here.

Memory per recording is bounded by construction, ``BUDGET`` (128 KiB) whatever the load: the
mixer's buffer (``BUDGET - WRITE_BLOCK - MAX_PENDING``, 2 s of 16 kHz mono) never grows past its
capacity (a chunk that would not fit commits the oldest audio first), at most ``WRITE_BLOCK``
bytes are noted, and a pass never hands more than ``MAX_PENDING`` bytes of audio to the disk
(silence, however long, is a count). Audio arriving faster than it can be mixed or written is
never dropped: what does not fit stays noted for the next pass, and ``add`` waits (backpressure
on the relay) until it does; each time is counted (``overflow``, the ``stored`` log line and
``talkgate_recording_overflow_total``), as are the frames committed early (``committed_early``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from talkgate.errors import AudioError, ErrorCode, StorageError
from talkgate.recording.disk import DISK, SYNC_POOL, DiskThread
from talkgate.recording.flush_clock import FlushClock
from talkgate.recording.mixer import TimelineMixer
from talkgate.recording.relay_tap import RelayTap
from talkgate.recording.wav import WavWriter

log = logging.getLogger("talkgate.recording")

# Re-exported: callers import the recorder's companions from here.
__all__ = ["BUDGET", "MAX_PENDING", "WRITE_BLOCK", "Finished", "FlushClock", "Recorder", "RelayTap"]

BUDGET = 128 * 1024  # a live recording's memory, at most
WRITE_BLOCK = 16 * 1024  # half a second of 16 kHz mono noted before the next tick: mix it now
MAX_PENDING = 48 * 1024  # audio on its way to the disk: a pass hands out no more, add() waits

Chunk = tuple[int, bytes, float]  # track, PCM16, arrival time
Piece = tuple[bytes, int]  # PCM16, then frames of silence

_SILENCE = bytes(16 * 1024)  # what the disk thread writes silence from: one for every recording


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
        self._frame_bytes = 2 * channels
        self._mixer = TimelineMixer(
            sample_rate=sample_rate,
            channels=channels,
            start_s=clock(),
            gap_tolerance_s=gap_tolerance_s,
            max_lead_s=max_lead_s,
            capacity_frames=(BUDGET - WRITE_BLOCK - MAX_PENDING) // self._frame_bytes,
        )
        self._inbox: list[Chunk] = []
        self._inbox_bytes = 0
        # Audio mixed and counted as queued, not yet written, in order. The disk thread writes it;
        # a closing recording's finisher takes what is left itself (``_finish``). Whoever writes
        # holds ``_io``, so the file's appends never interleave.
        self._pending: deque[list[Piece]] = deque()
        self._io = threading.Lock()
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
        # Audio that came faster than it could be mixed or written: times add() waited for room
        # or a pass left noted audio for the next, and frames committed before their place was
        # final (the mixer's buffer full). Reported, never dropped.
        self.overflow = 0
        self.committed_early = 0
        # Where close() spent its time (ms): the rest of the audio written and the header
        # patched ("written"), then the file made durable ("synced"). Reported by the stored line.
        self.timings: dict[str, float] = {}

    @property
    def memory_bytes(self) -> int:
        """What this recording holds in memory now: the mixer's buffer, the chunks noted and the
        audio on its way to the disk."""
        return self._mixer.buffered_bytes + self._inbox_bytes + self._backlog_to_disk()

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
        self.chunks += 1
        for at in range(0, len(pcm), WRITE_BLOCK):  # a chunk bigger than the inbox goes in parts
            part = pcm[at : at + WRITE_BLOCK]
            while self._inbox_bytes + len(part) > WRITE_BLOCK:
                self._flush()
                if self._inbox_bytes + len(part) <= WRITE_BLOCK or not await self._wait_for_room():
                    break
            if self._closing or self.error is not None:
                return
            self._inbox.append((track, part, self._clock()))
            self._inbox_bytes += len(part)
            self.peak_memory = max(self.peak_memory, self.memory_bytes)

    async def _wait_for_room(self) -> bool:
        """The disk is behind: wait until it has written some (False once stopped or closing).
        With nothing on its way to the disk a pass has all of ``MAX_PENDING``: it makes progress."""
        self.overflow += 1
        self._room.clear()
        self._waiting = True
        if self._backlog_to_disk() > 0:  # re-read: the thread may have written meanwhile
            await self._room.wait()
        self._waiting = False
        return self.error is None and not self._closing

    def _backlog_to_disk(self) -> int:
        return self._queued - self._written

    # --- on the disk thread (or, once closing, the finisher's pool thread) ---

    def _write_pending(self) -> None:
        """Write the audio handed out so far, in order. Skipped when the finisher holds the lock:
        the recording is closing, and the finisher writes all of it itself."""
        if not self._io.acquire(blocking=False):
            return
        try:
            while self._pending:
                self._append(self._pending.popleft())
        finally:
            self._io.release()

    def _append(self, pieces: list[Piece]) -> None:
        for pcm, silence in pieces:
            self._write(pcm, silence)

    def _write(self, pcm: bytes, silence: int) -> None:
        if self.error is None:
            assert self._writer is not None
            try:
                if pcm:
                    self._writer.write(pcm)
                for at in range(0, silence * self._frame_bytes, len(_SILENCE)):
                    self._writer.write(memoryview(_SILENCE)[: silence * self._frame_bytes - at])
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

    def _mix(self, *, final: bool = False) -> list[Piece]:
        """Mix what was noted, as far as there is room on the way to the disk; returns the audio
        that is final now (counted as queued). What finds no room stays noted for the next pass."""
        try:
            out = self._mixed(final=final)
        except Exception as exc:  # a bug here stops this recording, not the call or the others
            log.exception("recording %s: mixing failed", self.path.name)
            self.error = exc
            self._stopped()
            return []
        if self._backlog_to_disk() < MAX_PENDING // 2:
            self._room.set()
        return out

    def _mixed(self, *, final: bool) -> list[Piece]:
        """``_mix`` without its event-loop part: the finisher runs it on its thread."""
        if self.error is not None:
            self._inbox, self._inbox_bytes = [], 0
            return []
        out = self._place_noted()
        room = (MAX_PENDING - self._backlog_to_disk() - sum(len(p) for p, _ in out)) // self._frame_bytes
        upto = self._mixer.end_frame if final else self._mixer.horizon(self._clock())
        if upto > self._mixer.emitted_frames and (piece := self._mixer.take(upto, room)) != (b"", 0):
            out.append(piece)
        self._queued += sum(len(pcm) for pcm, _ in out)
        return out

    def _place_noted(self) -> list[Piece]:
        """Put the noted chunks on the timeline, in order. One that would not fit in the mixer's
        buffer first commits the oldest audio, if that fits on the way to the disk; else it and
        the chunks after it wait for the next pass."""
        mixer, out, placed = self._mixer, [], 0
        room = MAX_PENDING - self._backlog_to_disk()
        for track, pcm, arrived in self._inbox:
            frames = len(pcm) // 2
            over = mixer.place(track, frames, arrived) + frames - mixer.emitted_frames - mixer.capacity
            if over > 0:
                before = mixer.emitted_frames
                piece = mixer.take(before + over, room // self._frame_bytes)
                room -= len(piece[0])
                self.committed_early += mixer.emitted_frames - before
                out.append(piece)
                if before + over > mixer.emitted_frames:  # no room for all of it: next pass
                    self.overflow += 1
                    break
            mixer.add(track, pcm, arrived)
            placed += 1
        if placed:
            self._inbox = self._inbox[placed:]
            self._inbox_bytes = sum(len(pcm) for _, pcm, _ in self._inbox)
        return out

    def _flush(self) -> None:
        if out := self._mix():
            self._pending.append(out)
            self._disk.submit(self._write_pending)

    def _leave_clock(self) -> None:
        if self._flush_clock is not None:
            self._flush_clock.leave(self)
            self._flush_clock = None

    def _stop_clock(self) -> None:
        self._closing = True
        self._room.set()
        self._leave_clock()

    async def close(self) -> Finished:
        """Write what is left, patch the header, make the file durable; it is then a complete WAV.

        All of it on one pool thread (``_finish``), beside the other calls that end: neither the
        disk thread's queue, where every other live call's audio waits, nor the syncs of others."""
        self._stop_clock()
        assert self._writer is not None
        loop = asyncio.get_running_loop()
        data_bytes = 0
        try:
            data_bytes = await loop.run_in_executor(SYNC_POOL, self._finish, time.perf_counter())
        except OSError as exc:
            self.error = self.error or exc
        if self.error is not None:
            self._stopped()
        self._release()
        if self.error is not None:
            await self.abort()
            raise StorageError(f"recording failed: {self.error}")
        return Finished(self.path, data_bytes, self.sample_rate, self.channels)

    def _finish(self, began: float) -> int:
        """On a pool thread, once closing (nothing on the loop mixes or writes for this recording any
        more): the audio the disk thread has not written yet and the rest of the timeline, a pass of
        at most ``MAX_PENDING`` at a time, written here; the header patched; then, the lock let go
        (a stale disk job must not wait for it), the file synced. Returns the data bytes."""
        assert self._writer is not None
        with self._io:
            while self._pending:
                self._append(self._pending.popleft())
            while self.error is None and (self._inbox or self._mixer.end_frame > self._mixer.emitted_frames):
                try:
                    out = self._mixed(final=True)
                except Exception as exc:  # as in _mix: this recording stops, what is on disk stays
                    log.exception("recording %s: mixing failed", self.path.name)
                    self.error = exc
                    break
                self._append(out)
            data_bytes = self._patch()
        written = time.perf_counter()
        self.timings["written"] = (written - began) * 1000
        if self.error is None:
            self._writer.sync_and_close()
            self.timings["synced"] = (time.perf_counter() - written) * 1000
        return data_bytes

    def _release(self) -> None:
        """Once nothing more is mixed: drop the reference back to the relay (whose tap points here:
        a cycle) and free the mixing buffer now. A serving process collects cycles only every few
        minutes (talkgate/fastpaths/gc_pacing.py), and each ended call's buffer would wait for it."""
        self.on_error = None
        self._mixer.release()

    def _patch(self) -> int:
        assert self._writer is not None
        if self.error is not None:
            return 0
        return self._writer.patch()

    async def abort(self) -> None:
        """Stop without finalising; the file stays for the start-up repair."""
        self._stop_clock()
        self._release()
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(SYNC_POOL, self._close_file)

    def _close_file(self) -> None:
        """Write what was handed out (the file keeps all the audio mixed), then close it."""
        assert self._writer is not None
        with self._io:
            while self._pending:
                self._append(self._pending.popleft())
            self._writer.close()
