"""A recording's waveform summary for the call page, computed from the stored WAV as it streams
past (never the whole file in memory) and kept per recording object: a replaced recording has a new
key, so a summary is never stale. A few summaries are computed at a time; one per object at once."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from talkgate.recording.peaks import HEADER_BYTES, MAX_WIDTH, PeakSummary, WavLayout, narrow, wav_layout
from talkgate.recording.storage import Storage

__all__ = ["MAX_WIDTH", "Peaks", "Summary"]

CACHED = 256  # summaries kept (each at most 2 x 4096 samples: 16 KB)
AT_ONCE = 2  # summaries computed at a time, so that many first views cannot take every core


@dataclass(frozen=True, slots=True)
class Summary:
    layout: WavLayout
    low: np.ndarray
    high: np.ndarray

    def at(self, width: int) -> tuple[list[int], list[int]]:
        return narrow(self.low, self.high, width)


class Peaks:
    def __init__(self, cached: int = CACHED, at_once: int = AT_ONCE) -> None:
        self.cached = cached
        self.done: OrderedDict[str, Summary] = OrderedDict()
        self.running: dict[str, asyncio.Task[Summary]] = {}
        self.slots = asyncio.Semaphore(at_once)
        self.computed = 0  # summaries read from storage (the rest came from the cache)

    async def of(self, storage: Storage, key: str) -> Summary:
        if key in self.done:
            self.done.move_to_end(key)
            return self.done[key]
        task = self.running.get(key)
        if task is None:  # the first asker computes; the others wait for the same result
            task = asyncio.ensure_future(self._compute(storage, key))
            self.running[key] = task
            task.add_done_callback(lambda t: self._finished(key, t))
        return await asyncio.shield(task)

    def _finished(self, key: str, task: asyncio.Task[Summary]) -> None:
        self.running.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: its askers have it (or have gone away)

    async def _compute(self, storage: Storage, key: str) -> Summary:
        async with self.slots:
            size = await storage.size(key)
            head = b""
            async for block in storage.read(key, 0, min(size, HEADER_BYTES) - 1):
                head += block
            layout = wav_layout(head, size)
            summary = PeakSummary(layout.frames, layout.channels)
            if layout.data_bytes:
                end = layout.data_offset + layout.data_bytes - 1
                async for block in storage.read(key, layout.data_offset, end):
                    await asyncio.to_thread(summary.feed, block)  # NumPy, off the event loop
            self.computed += 1
        result = Summary(layout, *summary.result())
        self.done[key] = result
        while len(self.done) > self.cached:
            self.done.popitem(last=False)
        return result
