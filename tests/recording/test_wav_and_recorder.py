import asyncio
import gc
import itertools
import os
import threading
import weakref
from pathlib import Path

import numpy as np
import pytest

from talkgate.errors import StorageError
from talkgate.protocol.audio import PCM_16000, parse_wav_header, tone, wav_bytes
from talkgate.recording.disk import DiskThread
from talkgate.recording.mixer import AGENT, CALLER
from talkgate.recording.recorder import MAX_PENDING, FlushClock, Recorder, RelayTap
from talkgate.recording.wav import WRITEBACK_BYTES, WavWriter, repair, try_lock, writeback_range
from tests.support.timing import TIMEOUT, wait_until

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_finalised_file_is_a_plain_wav(tmp_path: Path) -> None:
    pcm = tone(PCM_16000, 250)
    writer = WavWriter(tmp_path / "a.wav.part")
    writer.write(pcm[:1000])
    writer.write(pcm[1000:])
    assert writer.finalize() == len(pcm)
    assert (tmp_path / "a.wav.part").read_bytes() == wav_bytes(pcm, 16000)


def test_writeback_waits_for_a_batch_of_whole_pages_and_never_takes_the_page_being_written() -> None:
    page, batch = 4096, 8 * 4096
    assert writeback_range(0, batch - 1, page=page, batch=batch) is None  # its last page is partial
    assert writeback_range(0, batch, page=page, batch=batch) == (0, batch)
    assert writeback_range(0, batch + page - 1, page=page, batch=batch) == (0, batch)  # not the partial page
    # the next range starts where the last one ended, and again waits for a whole batch
    assert writeback_range(batch, 2 * batch - 1, page=page, batch=batch) is None
    assert writeback_range(batch, 3 * batch + 5, page=page, batch=batch) == (batch, 2 * batch)


def test_a_live_file_asks_for_writeback_as_it_grows_and_its_bytes_stay_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[tuple[int, int, int]] = []
    real = os.posix_fadvise

    def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
        asked.append((offset, length, advice))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", fadvise)
    pcm = tone(PCM_16000, 20_000)  # 640,000 bytes: several batches, then a remainder
    writer = WavWriter(tmp_path / "w.wav.part")
    for i in range(0, len(pcm), 16_000):  # the recorder's half-second appends
        writer.write(pcm[i : i + 16_000])
    assert writer.finalize() == len(pcm)
    assert (tmp_path / "w.wav.part").read_bytes() == wav_bytes(pcm, 16000)
    page = os.sysconf("SC_PAGE_SIZE")
    assert [a for _, _, a in asked] == [os.POSIX_FADV_DONTNEED] * len(asked)
    size = 44 + len(pcm)
    assert asked and asked[0][0] == 0
    for (offset, length, _), (following, _, _) in itertools.pairwise(asked):
        assert following == offset + length  # contiguous: every full page once, none twice
    for offset, length, _ in asked:
        assert offset % page == 0 and length % page == 0 and length >= WRITEBACK_BYTES
    # all but the last batch's worth was handed over, and nothing past the last full page
    assert size - WRITEBACK_BYTES - page < sum(asked[-1][:2]) <= size // page * page


def test_a_file_left_by_a_dead_writer_is_repaired_to_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "b.wav.part"
    pcm = tone(PCM_16000, 100)
    writer = WavWriter(path)
    writer.write(pcm + b"\x07")  # the writer died mid-sample
    assert try_lock(path) is None  # still live: the repair keeps its hands off
    writer.close()  # the process is gone; its lock with it
    fd = try_lock(path)
    assert fd is not None
    try:
        assert repair(fd) == len(pcm)
    finally:
        os.close(fd)
    assert path.read_bytes() == wav_bytes(pcm, 16000)


async def test_recorder_writes_the_timeline_and_a_valid_wav(tmp_path: Path) -> None:
    clock = Clock()
    recorder = Recorder(tmp_path / "c.wav.part", clock=clock)
    await recorder.open()
    caller = tone(PCM_16000, 500, hz=300)
    agent = tone(PCM_16000, 400, hz=700)
    for i in range(5):
        clock.now += 0.1
        await recorder.add(CALLER, caller[i * 3200 : (i + 1) * 3200])
    clock.now += 1.0  # the agent answers a second after the turn
    await recorder.add(AGENT, agent)
    finished = await recorder.close()
    expected = np.zeros(int(1.5 * 16000) + 6400, dtype=np.int32)
    expected[:8000] += np.frombuffer(caller, "<i2")
    expected[24000:] += np.frombuffer(agent, "<i2")
    blob = finished.path.read_bytes()
    assert blob == wav_bytes(expected.astype("<i2").tobytes(), 16000)
    assert finished.duration_ms == 1900


async def test_recorder_writes_to_disk_while_the_call_goes_on(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "d.wav.part"
    recorder = Recorder(path, clock=clock, flush_interval_s=0.01)
    await recorder.open()
    chunk = tone(PCM_16000, 100)
    for _ in range(30):
        clock.now += 0.1
        await recorder.add(CALLER, chunk)
    clock.now += 1.0
    # The pump writes on its own schedule: watch the file grow (the test timeout bounds the wait).
    while os.stat(path).st_size < 44 + 30 * len(chunk):  # noqa: ASYNC110 - the disk is what is watched
        await asyncio.sleep(0.01)
    info = parse_wav_header(path.read_bytes())
    assert info.data_bytes >= 30 * len(chunk)
    assert recorder.memory_bytes <= 200_000
    await recorder.close()


@pytest.mark.parametrize("minutes", [1, 30])
async def test_memory_per_recording_is_flat_in_call_length(tmp_path: Path, minutes: int) -> None:
    clock = Clock()
    recorder = Recorder(tmp_path / f"m{minutes}.wav.part", clock=clock)
    await recorder.open()
    chunk = tone(PCM_16000, 100)
    peak = 0
    for _ in range(minutes * 600):  # faster than real time: the clock barely moves
        clock.now += 0.001
        await recorder.add(CALLER, chunk)
        await recorder.add(AGENT, chunk)
        peak = max(peak, recorder.memory_bytes)
    finished = await recorder.close()
    assert finished.data_bytes == minutes * 600 * len(chunk)
    assert peak <= 256 * 1024


async def test_a_failing_disk_ends_the_recording_with_an_error_and_keeps_what_was_written(
    tmp_path: Path,
) -> None:
    clock = Clock()
    path = tmp_path / "full.wav.part"
    recorder = Recorder(path, clock=clock, flush_interval_s=0.01)
    await recorder.open()
    chunk = tone(PCM_16000, 100)
    for _ in range(10):
        clock.now += 0.1
        await recorder.add(CALLER, chunk)
    clock.now += 1.0
    await wait_until(lambda: os.stat(path).st_size >= 44 + 10 * len(chunk))
    written = os.stat(path).st_size - 44

    def disk_full(pcm: bytes) -> None:
        raise OSError(28, "No space left on device")

    recorder._writer.write = disk_full  # type: ignore[union-attr,method-assign]
    for _ in range(5):
        clock.now += 0.1
        await recorder.add(CALLER, chunk)
    clock.now += 1.0
    await wait_until(lambda: recorder.error is not None)
    for _ in range(100):  # after the failure, adds neither block nor grow memory
        await recorder.add(CALLER, chunk)
    assert recorder.memory_bytes < 200_000
    with pytest.raises(StorageError, match="No space left on device"):
        await recorder.close()
    fd = try_lock(path)
    assert fd is not None
    try:
        assert repair(fd) == written  # what reached the disk before the failure is a valid WAV
    finally:
        os.close(fd)


async def test_a_stalled_disk_makes_add_wait_instead_of_growing_memory(tmp_path: Path) -> None:
    disk = DiskThread(name="stalled-disk")
    clock = Clock()
    recorder = Recorder(tmp_path / "slow.wav.part", clock=clock, flush_interval_s=0.01, disk=disk)
    await recorder.open()
    gate = threading.Event()
    disk.submit(gate.wait)  # every job after this one waits until the gate opens
    chunk = tone(PCM_16000, 100)
    adds = 0

    async def feed() -> None:
        nonlocal adds
        while True:
            clock.now += 0.1
            await recorder.add(CALLER, chunk)
            adds += 1

    feeder = asyncio.create_task(feed())
    await wait_until(lambda: recorder.memory_bytes >= MAX_PENDING)
    stalled_at = adds
    await asyncio.sleep(0.2)  # the disk is stalled: the feeder must be parked, not adding
    assert adds <= stalled_at + 1
    assert recorder.memory_bytes <= MAX_PENDING + 200_000
    gate.set()
    await wait_until(lambda: adds >= stalled_at + 30)  # the disk is back: adds go on
    feeder.cancel()
    finished = await recorder.close()
    assert finished.data_bytes >= adds * len(chunk) - len(chunk)


async def test_an_ending_recording_does_not_wait_for_the_disk_thread_and_its_other_calls(
    tmp_path: Path,
) -> None:
    """The disk thread is busy with every other call's audio (here: stalled behind a job that waits
    for a gate). A recording that ends writes what it had handed the thread, and the rest, itself:
    it is complete and synced while the thread is still stalled, and the thread's job for it, when
    its turn comes, writes nothing twice."""
    disk = DiskThread(name="busy-with-others")
    clock = Clock()
    recorder = Recorder(tmp_path / "ends.wav.part", clock=clock, flush_interval_s=3600, disk=disk)
    await recorder.open()
    gate = threading.Event()
    disk.submit(gate.wait)  # every job after this one waits until the gate opens
    chunks = [tone(PCM_16000, 100, hz=300 + 20 * i) for i in range(12)]
    try:
        for chunk in chunks:
            clock.now += 0.1
            await recorder.add(CALLER, chunk)
        assert recorder._pending  # handed to the disk thread, which has not written it
        finished = await asyncio.wait_for(recorder.close(), TIMEOUT)
        assert finished.path.read_bytes() == wav_bytes(b"".join(chunks), 16000)
    finally:
        gate.set()
    await disk.call(int)  # the jobs before it, the stale one for this recording included, have run
    assert finished.path.read_bytes() == wav_bytes(b"".join(chunks), 16000)


async def test_recordings_of_one_loop_share_one_clock_that_writes_each_in_its_slice(tmp_path: Path) -> None:
    """Two recordings per slice: one timer mixes them, a slice per tick, and each file grows on disk
    while its call goes on; the clock is gone once the last recording is closed."""
    clock = Clock()
    loop = asyncio.get_running_loop()
    n = 2 * FlushClock.SLICES
    recorders = [Recorder(tmp_path / f"r{i}.wav.part", clock=clock, flush_interval_s=0.05) for i in range(n)]
    for recorder in recorders:
        await recorder.open()
    clocks = {key: c for key, c in FlushClock._clocks.items() if key[0] is loop}
    assert len(clocks) == 1  # one timer for all
    mixed: list[int] = []
    real_mix = Recorder._mix

    def counting_mix(self: Recorder, *, final: bool = False) -> bytes:
        mixed.append(recorders.index(self))
        return real_mix(self, final=final)

    Recorder._mix = counting_mix  # type: ignore[method-assign]
    try:
        chunk = tone(PCM_16000, 100)
        for _ in range(5):
            clock.now += 0.1
            for recorder in recorders:
                await recorder.add(CALLER, chunk)
        clock.now += 1.0
        await wait_until(lambda: all(os.stat(r.path).st_size >= 44 + 5 * len(chunk) for r in recorders))
    finally:
        Recorder._mix = real_mix  # type: ignore[method-assign]
    # A tick mixes a slice of the recordings, and in turn every one of them.
    first_turn = mixed[:2]
    assert len(set(first_turn)) == 2 and first_turn[1] - first_turn[0] == FlushClock.SLICES
    assert set(mixed) == set(range(n))
    for recorder in recorders:
        finished = await recorder.close()
        assert finished.data_bytes >= 5 * len(chunk)
    assert not any(key[0] is loop for key in FlushClock._clocks)


async def test_a_recording_whose_mixing_fails_stops_alone(tmp_path: Path) -> None:
    clock = Clock()
    good = Recorder(tmp_path / "good.wav.part", clock=clock, flush_interval_s=0.02)
    bad = Recorder(tmp_path / "bad.wav.part", clock=clock, flush_interval_s=0.02)
    failures: list[BaseException] = []
    bad.on_error = failures.append
    await good.open()
    await bad.open()

    def broken(*_: object) -> int:
        raise ValueError("mixer bug")

    bad._mixer.add = broken  # type: ignore[method-assign]
    chunk = tone(PCM_16000, 100)
    for _ in range(10):
        clock.now += 0.1
        await good.add(CALLER, chunk)
        await bad.add(CALLER, chunk)
    await wait_until(lambda: bool(failures))
    assert isinstance(failures[0], ValueError)
    await wait_until(lambda: os.stat(good.path).st_size >= 44 + 10 * len(chunk))
    with pytest.raises(StorageError, match="mixer bug"):
        await bad.close()
    finished = await good.close()
    assert finished.path.read_bytes() == wav_bytes(chunk * 10, 16000)


async def test_an_ended_recording_frees_its_audio_without_the_cycle_collector(tmp_path: Path) -> None:
    """A serving process collects reference cycles only every few minutes (fastpaths/gc_pacing.py): an
    ended call's recording, and the audio it holds, must not wait for that to be freed."""
    recorder = Recorder(tmp_path / "r.wav.part")
    await recorder.open()
    tap = RelayTap(recorder)  # the tap and the recorder point at each other while the call lasts
    await tap.caller(tone(PCM_16000, 300), PCM_16000)
    freed = weakref.ref(recorder)
    await recorder.close()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        del tap, recorder
        # The disk thread lets go of the recording's last job right after finishing it.
        await wait_until(lambda: freed() is None)
    finally:
        if was_enabled:
            gc.enable()
