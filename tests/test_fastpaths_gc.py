"""The serving process's collector policy (talkgate/fastpaths/gc_pacing.py)."""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from talkgate.fastpaths import gc_pacing as heap
from tests.support.timing import wait_until

pytestmark = pytest.mark.unit


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_due_on_growth_or_after_the_longest_interval() -> None:
    loop = asyncio.new_event_loop()
    try:
        pacer = heap.Pacer(loop, min_growth=1000, max_interval_s=60)
        start = loop.time()
        assert not pacer.due(999, start + 1)
        assert pacer.due(1000, start + 1)
        assert pacer.due(1, start + 61)
        assert not pacer.due(0, start + 61)  # nothing new since the last collection
    finally:
        loop.close()


async def test_cycles_wait_for_growth_then_are_collected_and_automatic_collection_comes_back() -> None:
    was_enabled = gc.isenabled()
    gc.collect()
    pacer = heap.Pacer(asyncio.get_running_loop(), min_growth=30_000, check_s=0.005)
    pacer.start()
    try:
        assert not gc.isenabled()
        cycle = weakref.ref(Node())
        kept = [{"n": i} for i in range(1000)]  # growth, still under the threshold
        ticks = pacer.checks
        await wait_until(lambda: pacer.checks >= ticks + 5)
        assert cycle() is not None and pacer.collections == 0
        kept += [{"n": i} for i in range(40_000)]
        await wait_until(lambda: cycle() is None)
        assert pacer.collections == 1
    finally:
        pacer.stop()
    assert gc.isenabled() is True
    if not was_enabled:
        gc.disable()
    del kept
