"""One live call's recording: chunks → timeline mixer → WAV in the spool folder, as they arrive.

On the relay's hot path a chunk is only noted with its arrival time (a list append). A pump mixes
the chunks noted so far every ``flush_interval_s`` (sooner when a block is ready) and hands the
audio that has become final to the process's disk thread (``disk.DISK``), which appends it to the
file; the loop never waits for a write. A killed process therefore loses at most about
``flush_interval_s`` of audio. Memory per recording: the mixer's lead (``max_lead_s``) plus at most
``MAX_PENDING`` bytes of chunks noted or written-but-not-yet-on-disk; beyond that ``add`` waits
for the disk (backpressure) rather than grow.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from talkgate.errors import AudioError, ErrorCode, StorageError
from talkgate.protocol.audio import PCM_16000, AudioFormat, b64decode_audio, convert
from talkgate.recording.disk import DISK, DiskThread
from talkgate.recording.mixer import AGENT, CALLER, TimelineMixer
from talkgate.recording.wav import WavWriter

log = logging.getLogger("talkgate.recording")

WRITE_BLOCK = 16_000  # half a second of 16 kHz mono noted: wake the pump early
MAX_PENDING = 64_000  # two seconds noted or on their way to the disk: add() waits beyond this

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
        self.on_error: Callable[[OSError], object] | None = None
        # Bytes handed to the disk thread, and bytes it has written: each counter has one writer
        # (the loop, the thread), so their difference is read without a lock.
        self._queued = 0
        self._written = 0
        self._waiting = False
        self._writer: WavWriter | None = None
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._pump_task: asyncio.Task[None] | None = None
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
        self._pump_task = asyncio.create_task(self._pump(), name=f"recorder:{self.path.name}")

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
            self._wake.set()
        while self._backlog() >= MAX_PENDING and self.error is None and not self._closing:
            self._wake.set()
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
                self.error = exc
                log.error("recording %s: writing failed: %s", self.path.name, exc)
                if self.on_error is not None and self._loop is not None:
                    self._loop.call_soon_threadsafe(self.on_error, exc)
        self._written += len(pcm)
        if self._waiting and self._loop is not None:
            self._loop.call_soon_threadsafe(self._room.set)

    # --- on the loop ---

    def _flush(self, *, final: bool = False) -> None:
        batch, self._inbox = self._inbox, []
        self._inbox_bytes = 0
        for track, pcm, arrived in batch:
            self._mixer.add(track, pcm, arrived)
        out = self._mixer.finish() if final else self._mixer.drain(self._clock())
        if out:
            self._queued += len(out)
            self._disk.submit(self._append, out)
        if self._backlog() < MAX_PENDING:
            self._room.set()

    async def _pump(self) -> None:
        assert self._loop is not None
        while not self._closing and self.error is None:
            # A timer handle, not wait_for: no task per wake-up on this hot path.
            timer = self._loop.call_later(self._flush_interval, self._wake.set)
            await self._wake.wait()
            timer.cancel()
            self._wake.clear()
            self._flush()
        self._room.set()

    async def close(self) -> Finished:
        """Write what is left, patch the header; the file is then a complete WAV."""
        self._closing = True
        self._wake.set()
        self._room.set()
        if self._pump_task is not None:
            await self._pump_task
        assert self._writer is not None
        if self.error is None:
            self._flush(final=True)
        try:
            # After every append submitted before it, on the same thread.
            data_bytes = await self._disk.call(self._finalize)
        except OSError as exc:
            self.error = self.error or exc
        if self.error is not None:
            await self.abort()
            raise StorageError(f"recording failed: {self.error}")
        return Finished(self.path, data_bytes, self.sample_rate, self.channels)

    def _finalize(self) -> int:
        assert self._writer is not None
        if self.error is not None:
            return 0
        return self._writer.finalize()

    async def abort(self) -> None:
        """Stop without finalising; the file stays for the start-up repair."""
        self._closing = True
        self._wake.set()
        self._room.set()
        if self._pump_task is not None and not self._pump_task.done():
            self._pump_task.cancel()
        if self._writer is not None:
            await self._disk.call(self._writer.close)


class RelayTap:
    """The push-to-talk relay's audio into a recorder: the caller's PCM and the agent's audio in the
    provider's output format, both converted to the recording's 16 kHz PCM."""

    def __init__(
        self, recorder: Recorder, on_failure: Callable[[StorageError], Awaitable[object]] | None = None
    ) -> None:
        self.recorder = recorder
        self._on_failure = on_failure
        self._told: asyncio.Task[None] | None = None
        recorder.on_error = self._disk_failed

    def _disk_failed(self, _exc: OSError) -> None:
        if self._told is None:  # the task is kept referenced here until it is done
            self._told = asyncio.ensure_future(self._failed())

    async def caller(self, pcm: bytes, fmt: AudioFormat) -> None:
        await self.recorder.add(CALLER, convert(pcm, fmt, PCM_16000) if fmt != PCM_16000 else pcm)

    async def agent(self, audio_b64: str, fmt: AudioFormat) -> None:
        try:
            audio = b64decode_audio(audio_b64)
        except AudioError:
            return  # the relay forwards the provider's frame as it is; it just is not recorded
        await self.recorder.add(AGENT, convert(audio, fmt, PCM_16000) if fmt != PCM_16000 else audio)

    async def _failed(self) -> None:
        """The disk failed mid-call: the conversation goes on unrecorded; say so once."""
        if self._on_failure is None:
            return
        await self._on_failure(
            StorageError(
                f"recording stopped ({self.recorder.error}); the conversation goes on, "
                "and what was recorded until now is kept"
            )
        )
