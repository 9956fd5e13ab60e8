"""The flush clock with fake recorders, a fake disk and a loop whose timers are stepped by hand."""

from __future__ import annotations

from typing import Any, cast

import pytest

from talkgate.recording import flush_clock, recorder, relay_tap
from talkgate.recording.flush_clock import FlushClock

pytestmark = [pytest.mark.unit, pytest.mark.timeout(5)]


class SteppedLoop:
    """Only what the clock uses of a loop: ``call_later``, whose timers the test fires."""

    def __init__(self) -> None:
        self.timers: list[tuple[float, Any]] = []

    def call_later(self, delay: float, callback: Any) -> Any:
        timer = Timer(self, delay, callback)
        self.timers.append((delay, timer))
        return timer

    def fire(self) -> float:
        (delay, timer), *self.timers = self.timers
        timer.callback()
        return delay


class Timer:
    def __init__(self, loop: SteppedLoop, delay: float, callback: Any) -> None:
        self.loop, self.delay, self.callback = loop, delay, callback

    def cancel(self) -> None:
        self.loop.timers = [(d, t) for d, t in self.loop.timers if t is not self]


class FakeDisk:
    def __init__(self) -> None:
        self.jobs: list[Any] = []

    def submit(self, fn: Any, *args: Any) -> None:
        self.jobs.append((fn, args))


class FakeRecorder:
    def __init__(self, disk: FakeDisk, name: str) -> None:
        self._disk, self.name = disk, name
        self.mixed = 0
        self._pending: list[bytes] = []  # what the clock handed out, for the disk thread to write
        self.written: list[bytes] = []

    def _mix(self) -> bytes:
        self.mixed += 1
        return self.name.encode()

    def _write_pending(self) -> None:
        self.written += self._pending
        self._pending.clear()


def test_the_recorder_module_still_exports_its_companions():
    assert recorder.FlushClock is flush_clock.FlushClock
    assert recorder.RelayTap is relay_tap.RelayTap


def test_one_clock_per_loop_mixes_each_recording_once_per_interval_in_slices_with_one_disk_job_per_tick():
    loop, disk = SteppedLoop(), FakeDisk()
    recorders = [FakeRecorder(disk, f"r{i}") for i in range(2 * FlushClock.SLICES)]
    clocks = {FlushClock.join(cast(Any, r), cast(Any, loop), 0.5) for r in recorders}
    assert len(clocks) == 1 and len(loop.timers) == 1  # one timer, however many recordings
    clock = clocks.pop()
    delays = [loop.fire() for _ in range(FlushClock.SLICES)]  # one whole interval
    assert sum(delays) == pytest.approx(0.5)
    assert [r.mixed for r in recorders] == [1] * len(recorders)
    assert len(disk.jobs) == FlushClock.SLICES  # one job per tick, for both of that tick's recordings
    for fn, args in disk.jobs:
        fn(*args)
    assert all(r.written == [r.name.encode()] for r in recorders)
    for r in recorders:
        clock.leave(cast(Any, r))
    assert loop.timers == [] and clock not in FlushClock._clocks.values()
