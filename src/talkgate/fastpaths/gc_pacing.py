"""Fast path ``gc_pacing``: the garbage collector's policy for a serving process.

A relay process holds a few hundred thousand long-lived objects (the libraries' modules, classes
and caches, then every live call's sockets, tasks and buffers). CPython's full collections walk
all of them: measured with 400 relayed calls (``bench/relay.py``), each paused the event loop for
130-190 ms, every ten seconds or so, which every chunk in flight then waited for. So, once the app
is built, ``gc.freeze()`` moves what exists then (about 170,000 objects: imports and app set-up,
which live as long as the process) out of the collector's sight for good: a full collection with
400 calls then takes 80-130 ms instead. The rest of that pause is the live calls' own objects
(about 330 each: sockets, tasks, buffers), which only more processes divide.

That left the young collections, which the relay made pause for 30-70 ms every few seconds. Every
chunk makes objects that wait for the next one (coroutines, futures, their callbacks); they outlive
a young collection, are promoted, then die in an older generation. CPython counts a young
collection's due time as allocations minus deallocations of any generation, so these deaths cancel
the births: no young collection comes due while the young generation fills with 40,000-60,000
waiting objects, which the collection that finally comes walks all at once. Raising the young
threshold only makes that worse; collecting on a timer walks all the waiting objects every time.

So a serving process runs the collector on a policy of its own (``Pacer``): automatic collection
is off; once a second the pacer reads the net growth of tracked objects since the last collection,
and runs a full collection once that growth passes a quarter of the heap left by the last one (at
least ``MIN_GROWTH`` objects) or ``MAX_INTERVAL_S`` has passed. What a relay leaves for the
collector is little (a conversation's end leaves about 60 objects in reference cycles, a start
about 30), so with 500 calls per process none came in the benchmark's 20 s of steady relaying,
where CPython had run a young collection every few seconds and a full one every ten; cyclic
garbage waits longer, bounded by the growth threshold (so nothing large may sit in a cycle: see
``Recorder._release``). A burst of starts grows the heap quickly and is collected as it grows.

Pauses are observed in ``talkgate_gc_pause_seconds`` (``/metrics``), by generation, whether the
pacer runs or not (``TALKGATE_FASTPATHS=off``: CPython's own collector, thresholds and all).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Iterator
from typing import Any

from talkgate import metrics

log = logging.getLogger("talkgate.heap")  # (the name operators filter on: kept from heap.py)

_started: dict[int, float] = {}


def _observe(phase: str, info: dict[str, Any]) -> None:
    generation = info["generation"]
    if phase == "start":
        _started[generation] = time.perf_counter()
    elif (began := _started.pop(generation, None)) is not None:
        metrics.GC_PAUSE_SECONDS.labels(str(generation)).observe(time.perf_counter() - began)


def observe() -> None:
    """Time every collection into ``talkgate_gc_pause_seconds`` (once per process)."""
    if _observe not in gc.callbacks:
        gc.callbacks.append(_observe)


def settle() -> None:
    """Call once per serving process, after the app is built and before it serves."""
    observe()  # first: the set-up's own full collection is the first figure
    gc.collect()
    gc.freeze()


MIN_GROWTH = 50_000  # tracked objects; about 150 calls' worth
MAX_INTERVAL_S = 600.0
CHECK_S = 1.0


class Pacer:
    """Full collections when the heap has grown by a quarter (see above), on this event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        min_growth: int = MIN_GROWTH,
        max_interval_s: float = MAX_INTERVAL_S,
        check_s: float = CHECK_S,
    ) -> None:
        self._loop = loop
        self._min_growth = min_growth
        self._max_interval = max_interval_s
        self._check_s = check_s
        self._threshold = min_growth
        self._last = loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self.checks = 0
        self.collections = 0

    def start(self) -> None:
        gc.disable()
        self._timer = self._loop.call_later(self._check_s, self._check)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        gc.enable()

    def due(self, growth: int, now: float) -> bool:
        return growth >= self._threshold or (growth > 0 and now - self._last >= self._max_interval)

    def _check(self) -> None:
        self.checks += 1
        now = self._loop.time()
        if self.due(gc.get_count()[0], now):
            self.collect()
        self._timer = self._loop.call_later(self._check_s, self._check)

    def collect(self) -> None:
        growth = gc.get_count()[0]
        began = time.perf_counter()
        freed = gc.collect()
        self.collections += 1
        self._last = self._loop.time()
        # A quarter of what is left, as CPython's own rule for full collections.
        self._threshold = max(self._min_growth, len(gc.get_objects()) // 4)
        log.debug(
            "garbage collection: %d objects freed of a growth of %d in %.0f ms; the next after %d more",
            freed,
            growth,
            (time.perf_counter() - began) * 1000,
            self._threshold,
        )


@contextlib.contextmanager
def paced(loop: asyncio.AbstractEventLoop, enabled: bool = True) -> Iterator[Pacer | None]:
    """A serving process's collector policy, for as long as it serves: the pacer (None when
    ``enabled`` is false, where CPython's automatic collection runs as it would anyway)."""
    if not enabled:
        observe()
        yield None
        return
    settle()
    pacer = Pacer(loop)
    pacer.start()
    try:
        yield pacer
    finally:
        pacer.stop()
