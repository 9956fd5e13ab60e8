"""A live recording's memory is bounded by construction (``BUDGET``, 128 KiB), however late the mixing
runs and however fast the audio comes; what does not fit is counted, never dropped."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from pathlib import Path
from typing import Any, cast

import pytest
from prometheus_client import REGISTRY

from talkgate.calls.recordings import LiveRecording, Recordings
from talkgate.persistence.models import AudioSource
from talkgate.protocol.audio import PCM_16000, parse_wav_header, tone
from talkgate.recording import wav
from talkgate.recording.disk import DiskThread
from talkgate.recording.mixer import AGENT, CALLER
from talkgate.recording.recorder import BUDGET, Recorder
from talkgate.recording.storage import LocalStorage
from tests.support.gate import make_settings
from tests.support.timing import TIMEOUT, wait_until

pytestmark = pytest.mark.unit

RATE_BYTES = 32_000  # a second of 16 kHz mono PCM16


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("channels", [1, 2])
async def test_late_mixing_and_long_silences_stay_within_the_budget(tmp_path: Path, channels: int) -> None:
    """The flush clock never runs (it is an hour away): every mix happens on the relay's path, as
    late as it can be; minutes of silence between turns are written, never held."""
    clock = Clock()
    recorder = Recorder(tmp_path / "late.wav.part", clock=clock, channels=channels, flush_interval_s=3600)
    await recorder.open()
    chunk = tone(PCM_16000, 100)
    peak = 0
    for turn in range(6):
        for _ in range(30):  # a 3 s turn at the microphone's pace, the agent answering over it
            clock.now += 0.1
            await recorder.add(CALLER, chunk)
            await recorder.add(AGENT, chunk)
            peak = max(peak, recorder.memory_bytes)
        clock.now += 60.0 * (turn + 1)  # then a long silence
    finished = await recorder.close()
    assert peak <= BUDGET and recorder.peak_memory <= BUDGET
    # The timeline: 6 turns of 3 s and silences of 1+2+...+5 minutes (the last one is not recorded).
    assert finished.duration_ms == pytest.approx((6 * 3 + 60 * 15) * 1000, abs=400)


@pytest.mark.parametrize("channels", [1, 2])
async def test_a_burst_against_a_stalled_disk_waits_is_counted_and_loses_nothing(
    tmp_path: Path, channels: int
) -> None:
    """A minute of an agent's reply arrives at once while the disk is stalled: add() waits
    (backpressure) instead of growing, each wait is counted, and every byte reaches the file."""
    disk = DiskThread(name="stalled-burst")
    clock = Clock()
    recorder = Recorder(
        tmp_path / "burst.wav.part", clock=clock, channels=channels, flush_interval_s=0.01, disk=disk
    )
    await recorder.open()
    gate = threading.Event()
    disk.submit(gate.wait)  # every job after this one waits until the gate opens
    chunk = tone(PCM_16000, 100)
    peak = 0

    async def burst() -> None:
        nonlocal peak
        for _ in range(600):  # 60 s, the clock standing still
            await recorder.add(AGENT, chunk)
            peak = max(peak, recorder.memory_bytes)

    sender = asyncio.create_task(burst())
    await wait_until(lambda: recorder.overflow > 0)  # parked: the disk has no room
    assert not sender.done()
    assert recorder.memory_bytes <= BUDGET
    gate.set()
    await asyncio.wait_for(sender, 30)
    finished = await recorder.close()
    assert peak <= BUDGET and recorder.peak_memory <= BUDGET
    assert finished.data_bytes == 600 * len(chunk) * channels  # nothing dropped
    assert recorder.committed_early > 0  # the reply ran more than the buffer ahead of the clock


async def test_one_huge_chunk_goes_in_parts_within_the_budget(tmp_path: Path) -> None:
    clock = Clock()
    recorder = Recorder(tmp_path / "huge.wav.part", clock=clock)
    await recorder.open()
    await recorder.add(AGENT, tone(PCM_16000, 10_000))  # 10 s in one chunk
    assert recorder.memory_bytes <= BUDGET
    finished = await recorder.close()
    assert finished.data_bytes == 10 * RATE_BYTES
    assert recorder.peak_memory <= BUDGET


async def test_calls_ending_together_wait_for_their_disk_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each recording's sync runs beside the others', not one after another on the disk thread:
    here a sync returns only once eight are under way at once (else the barrier breaks)."""
    together = threading.Barrier(8, timeout=TIMEOUT)
    synced: list[int] = []

    def fdatasync(fd: int) -> None:
        together.wait()
        synced.append(fd)

    monkeypatch.setattr(wav.os, "fdatasync", fdatasync)
    clock = Clock()
    recorders = [Recorder(tmp_path / f"end{i}.wav.part", clock=clock) for i in range(16)]
    for recorder in recorders:
        await recorder.open()
        await recorder.add(CALLER, tone(PCM_16000, 100))
    finished = await asyncio.gather(*(recorder.close() for recorder in recorders))
    assert len(synced) == 16
    assert all(f.data_bytes == 3200 for f in finished)
    assert all(parse_wav_header(f.path.read_bytes()[:44]) for f in finished)


async def test_the_overflow_is_reported_when_the_recording_is_stored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """What came faster than it could be written is said in the recording's stored log line and
    added to talkgate_recording_overflow_total."""
    disk = DiskThread(name="stalled-report")
    recorder = Recorder(
        tmp_path / "spool" / "c1.relay.wav.part", clock=Clock(), flush_interval_s=0.01, disk=disk
    )
    recorder.path.parent.mkdir()
    await recorder.open()
    gate = threading.Event()
    disk.submit(gate.wait)
    sender = asyncio.create_task(recorder.add(AGENT, tone(PCM_16000, 30_000)))  # 30 s at once
    await wait_until(lambda: recorder.overflow > 0)
    gate.set()
    await asyncio.wait_for(sender, TIMEOUT)

    settings = make_settings(tmp_path, None)
    recordings = Recordings(settings, cast(Any, None), LocalStorage(tmp_path / "store"), cast(Any, None))

    async def link(*_: object, **__: object) -> bool:
        return True

    recordings.link = link  # type: ignore[method-assign]
    before = REGISTRY.get_sample_value("talkgate_recording_overflow_total") or 0.0
    live = LiveRecording("u1", "c1", "conv1", AudioSource.RELAY, recorder)
    with caplog.at_level(logging.INFO, logger="talkgate"):
        assert await recordings.finish(live)
    line = next(r.getMessage() for r in caplog.records if "stored:" in r.getMessage())
    assert f"overflow {recorder.overflow}, " in line and "ms committed early" in line
    # Where the finalisation spent its time, phase by phase (bench/recorder.py --verbose reads it).
    assert re.search(
        r"finalized in [0-9.]+ ms \(written [0-9.]+, synced [0-9.]+, stored [0-9.]+, linked [0-9.]+\)", line
    )
    after = REGISTRY.get_sample_value("talkgate_recording_overflow_total")
    assert after == before + recorder.overflow
