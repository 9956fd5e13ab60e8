"""A recording's waveform summary: the same extremes as reading the whole file at once, whatever the
blocks it streams in; a WAV's layout from its first bytes; one computation per stored object."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import numpy as np
import pytest

from talkgate.calls.peaks import Peaks
from talkgate.errors import StorageError
from talkgate.protocol.audio import wav_bytes
from talkgate.recording.peaks import UNKNOWN_SIZE, PeakSummary, narrow, wav_layout

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


def direct(samples: np.ndarray, channels: int, buckets: int) -> tuple[list[int], list[int]]:
    """The extremes of each slice, from every sample at once (what streaming must equal)."""
    frames = samples.reshape(-1, channels)
    ids = (np.arange(len(frames)) * buckets) // len(frames)
    low = [int(frames[ids == b].min()) for b in range(buckets)]
    high = [int(frames[ids == b].max()) for b in range(buckets)]
    return low, high


@pytest.mark.parametrize(
    ("channels", "frames", "buckets"), [(1, 48_000, 700), (2, 10_001, 333), (1, 50, 4096)]
)
def test_streamed_in_any_blocks_the_summary_is_the_whole_files(channels, frames, buckets):
    rng = np.random.default_rng(channels * frames)
    samples = rng.integers(-32768, 32768, frames * channels).astype("<i2")
    pcm = samples.tobytes()
    summary = PeakSummary(frames, channels, buckets)
    at = 0
    while at < len(pcm):  # blocks of odd sizes: a block may end inside a sample or a frame
        size = int(rng.integers(1, 9000))
        summary.feed(pcm[at : at + size])
        at += size
    low, high = summary.result()
    want = direct(samples, channels, min(buckets, frames))
    assert (low.tolist(), high.tolist()) == want


def test_all_positive_slices_keep_their_true_minimum_and_a_short_file_is_silence_after_its_end():
    summary = PeakSummary(frames=100, channels=1, buckets=10)
    summary.feed(np.full(50, 1000, dtype="<i2").tobytes())  # the header promised 100 frames
    low, high = summary.result()
    assert low.tolist() == [1000] * 5 + [0] * 5 and high.tolist() == [1000] * 5 + [0] * 5


def test_a_narrower_summary_is_the_extremes_of_the_slices_it_covers():
    rng = np.random.default_rng(7)
    samples = rng.integers(-32768, 32768, 4096 * 8).astype("<i2")
    base = PeakSummary(len(samples), 1, 4096)
    base.feed(samples.tobytes())
    for width in (1, 512, 800, 4096):
        low, high = narrow(*base.result(), width)
        assert len(low) == width
        if 4096 % width == 0:  # slices that nest: exactly the direct answer
            assert (low, high) == direct(samples, 1, width)
        assert min(low) == samples.min() and max(high) == samples.max()
    assert len(narrow(*base.result(), 10_000)[0]) == 4096  # never more than it has


def test_a_wavs_layout_comes_from_its_first_bytes():
    pcm = np.arange(-500, 500, dtype="<i2").tobytes()
    wav = wav_bytes(pcm, 16000, 2)
    layout = wav_layout(wav[:4096], len(wav))
    assert (layout.data_offset, layout.data_bytes, layout.channels, layout.sample_rate) == (
        44,
        2000,
        2,
        16000,
    )
    assert layout.frames == 500
    # A chunk before the samples (a provider's LIST), and a data size never patched after a crash.
    extra = (
        wav[:12] + b"LIST" + struct.pack("<I", 5) + b"abcde\0" + wav[12:40] + struct.pack("<I", UNKNOWN_SIZE)
    )
    odd = extra + pcm
    layout = wav_layout(odd[:4096], len(odd))
    assert (layout.data_offset, layout.data_bytes) == (len(extra), 2000)
    with pytest.raises(StorageError, match="not a readable WAV"):
        wav_layout(b"ID3\x04" + bytes(100), 104)
    eight_bit = bytearray(wav)
    struct.pack_into("<H", eight_bit, 34, 8)
    with pytest.raises(StorageError, match="not PCM16"):
        wav_layout(bytes(eight_bit), len(eight_bit))


class FakeStorage:
    """Objects in memory; counts what is read, in blocks like the real stores."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.reads: list[str] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def size(self, key: str) -> int:
        return len(self.objects[key])

    async def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        self.reads.append(key)
        await self.gate.wait()
        blob = self.objects[key][start : end + 1]
        for at in range(0, len(blob), 1000):
            yield blob[at : at + 1000]


async def test_one_computation_per_stored_object_and_a_replaced_recording_is_read_afresh():
    loud = wav_bytes(np.full(16000, 9000, dtype="<i2").tobytes(), 16000)
    quiet = wav_bytes(np.full(16000, 10, dtype="<i2").tobytes(), 16000)
    storage = FakeStorage({"rec/a-1.wav": loud, "rec/a-2.wav": quiet})
    peaks = Peaks(cached=1)
    storage.gate.clear()
    first = [asyncio.ensure_future(peaks.of(storage, "rec/a-1.wav")) for _ in range(5)]
    await asyncio.sleep(0)
    storage.gate.set()
    summaries = await asyncio.gather(*first)
    assert peaks.computed == 1 and all(s is summaries[0] for s in summaries)  # five askers, one read
    assert summaries[0].at(4) == ([9000] * 4, [9000] * 4)
    again = await peaks.of(storage, "rec/a-1.wav")
    assert again is summaries[0] and peaks.computed == 1
    # The call's recording replaced: a new object key, so a new summary, never the old one.
    replaced = await peaks.of(storage, "rec/a-2.wav")
    assert replaced.at(2) == ([10, 10], [10, 10]) and peaks.computed == 2
    assert list(peaks.done) == ["rec/a-2.wav"]  # bounded: the oldest summary went
