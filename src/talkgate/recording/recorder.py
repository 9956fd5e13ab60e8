"""One live call's recording: chunks → timeline mixer → WAV in the spool folder, as they arrive.

The event loop only mixes (NumPy, microseconds per chunk); file writes run in worker threads, one
at a time per recording, in order. A pump writes what the mixer has made final every
``flush_interval_s`` (and sooner when a block is ready), so a killed process loses at most about
that much audio. Memory per recording: the mixer's lead (``max_lead_s``) plus at most
``max_pending`` bytes waiting for the disk; beyond that ``add`` waits for the disk (backpressure)
rather than grow.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from talkgate.errors import AudioError, StorageError
from talkgate.protocol.audio import PCM_16000, AudioFormat, b64decode_audio, convert
from talkgate.recording.mixer import AGENT, CALLER, TimelineMixer
from talkgate.recording.wav import WavWriter

log = logging.getLogger("talkgate.recording")

WRITE_BLOCK = 32_000  # a second of 16 kHz mono: wake the pump early
MAX_PENDING = 64_000  # two seconds: beyond this, add() waits for the disk


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
    ) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.channels = channels
        self._clock = clock
        self._flush_interval = flush_interval_s
        self._mixer = TimelineMixer(
            sample_rate=sample_rate,
            channels=channels,
            start_s=clock(),
            gap_tolerance_s=gap_tolerance_s,
            max_lead_s=max_lead_s,
        )
        self._pending = bytearray()
        self._writer: WavWriter | None = None
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closing = False
        self._pump_task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        self.chunks = 0
        self.peak_memory = 0

    @property
    def memory_bytes(self) -> int:
        """What this recording holds in memory now (mixer lead and bytes waiting for the disk)."""
        return self._mixer.buffered_bytes + len(self._pending)

    async def open(self) -> None:
        self._writer = await asyncio.to_thread(
            WavWriter, self.path, sample_rate=self.sample_rate, channels=self.channels
        )
        self._pump_task = asyncio.create_task(self._pump(), name=f"recorder:{self.path.name}")

    async def add(self, track: int, pcm: bytes) -> None:
        if self._closing or self.error is not None or not pcm:
            return
        self._mixer.add(track, pcm, self._clock())
        self.chunks += 1
        self._pending += self._mixer.drain(self._clock())
        self.peak_memory = max(self.peak_memory, self.memory_bytes)
        if len(self._pending) >= WRITE_BLOCK:
            self._wake.set()
        if len(self._pending) >= MAX_PENDING:
            self._room.clear()
            await self._room.wait()

    async def _write_pending(self) -> None:
        assert self._writer is not None
        while self._pending:
            block = bytes(self._pending)
            self._pending.clear()
            await asyncio.to_thread(self._writer.write, block)
        self._room.set()

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self._closing:
                # A timer handle, not wait_for: no task per wake-up on this hot path.
                timer = loop.call_later(self._flush_interval, self._wake.set)
                await self._wake.wait()
                timer.cancel()
                self._wake.clear()
                self._pending += self._mixer.drain(self._clock())
                await self._write_pending()
        except OSError as exc:
            self.error = exc
            self._room.set()
            log.error("recording %s: writing failed: %s", self.path.name, exc)

    async def close(self) -> Finished:
        """Write what is left, patch the header; the file is then a complete WAV."""
        self._closing = True
        self._wake.set()
        if self._pump_task is not None:
            await self._pump_task
        if self.error is not None:
            await self.abort()
            raise StorageError(f"recording failed: {self.error}")
        assert self._writer is not None
        self._pending += self._mixer.finish()
        try:
            await self._write_pending()
            data_bytes = await asyncio.to_thread(self._writer.finalize)
        except OSError as exc:
            await self.abort()
            raise StorageError(f"recording failed: {exc}") from exc
        return Finished(self.path, data_bytes, self.sample_rate, self.channels)

    async def abort(self) -> None:
        """Stop without finalising; the file stays for the start-up repair."""
        self._closing = True
        self._wake.set()
        if self._pump_task is not None and not self._pump_task.done():
            self._pump_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
        if self._writer is not None:
            await asyncio.to_thread(self._writer.close)


class RelayTap:
    """The push-to-talk relay's audio into a recorder: the caller's PCM and the agent's audio in the
    provider's output format, both converted to the recording's 16 kHz PCM."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    async def caller(self, pcm: bytes, fmt: AudioFormat) -> None:
        await self.recorder.add(CALLER, convert(pcm, fmt, PCM_16000) if fmt != PCM_16000 else pcm)

    async def agent(self, audio_b64: str, fmt: AudioFormat) -> None:
        try:
            audio = b64decode_audio(audio_b64)
        except AudioError:
            return  # the relay forwards the provider's frame as it is; it just is not recorded
        await self.recorder.add(AGENT, convert(audio, fmt, PCM_16000) if fmt != PCM_16000 else audio)
