"""One timer per event loop that mixes every live recording's noted audio and hands it to the disk.

One timer rather than a task per recording: with 400 calls a task each woke 800 times a second,
and with its own disk job each, cost the relay about a fifth of its CPU (``bench/relay.py``).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from talkgate.recording.disk import DiskThread

if TYPE_CHECKING:  # the recorder joins its clock: the clock only calls back into it
    from talkgate.recording.recorder import Recorder


def _write_batch(batch: list[Recorder]) -> None:
    """On the disk thread: what one tick mixed of each recording, each recording's in order."""
    for recorder in batch:
        recorder._write_pending()


class FlushClock:
    """Every ``interval`` s, mixes the audio noted by each recording of one event loop and sends
    the result to each disk thread as one job. Exists while it has recordings.

    The recordings are taken in ``SLICES`` turns, one every ``interval / SLICES`` s (10 ms): mixing
    all 400 calls of a busy process in one go held the loop for about 15 ms, which every chunk
    arriving meanwhile waited for; in tenths, a tick of 50 calls (about 2 ms every 50 ms) still
    added a millisecond or two to the relay's p99 at 500 calls."""

    SLICES = 50

    _clocks: dict[tuple[asyncio.AbstractEventLoop, float], FlushClock] = {}

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float) -> None:
        self._loop = loop
        self._interval = interval
        self._recorders: dict[Recorder, None] = {}  # insertion-ordered set
        self._timer: asyncio.TimerHandle | None = None
        self._turn = 0

    @classmethod
    def join(cls, recorder: Recorder, loop: asyncio.AbstractEventLoop, interval: float) -> FlushClock:
        clock = cls._clocks.get((loop, interval))
        if clock is None:
            clock = cls._clocks[(loop, interval)] = cls(loop, interval)
        clock._recorders[recorder] = None
        if clock._timer is None:
            clock._timer = loop.call_later(interval / cls.SLICES, clock._tick)
        return clock

    def leave(self, recorder: Recorder) -> None:
        self._recorders.pop(recorder, None)
        if not self._recorders:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if self._clocks.get((self._loop, self._interval)) is self:
                del self._clocks[(self._loop, self._interval)]

    def _tick(self) -> None:
        batches: dict[DiskThread, list[Recorder]] = {}
        self._turn = (self._turn + 1) % self.SLICES
        for recorder in list(self._recorders)[self._turn :: self.SLICES]:
            if out := recorder._mix():
                recorder._pending.append(out)
                batches.setdefault(recorder._disk, []).append(recorder)
        for disk, batch in batches.items():
            disk.submit(_write_batch, batch)
        self._timer = (
            self._loop.call_later(self._interval / self.SLICES, self._tick) if self._recorders else None
        )
