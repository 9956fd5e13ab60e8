"""A recording's waveform summary: the lowest and highest sample of each of a few thousand equal
slices of the WAV, computed block by block as the file streams past (an hour of 16 kHz PCM16 is
about 115 MB; the summary is a few kilobytes), and any narrower width derived from it. Pure.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from talkgate.errors import AudioError, StorageError
from talkgate.protocol.audio import parse_wav_header

BASE_BUCKETS = 4096  # the summary kept per recording; every width asked for is derived from it
MAX_WIDTH = BASE_BUCKETS
HEADER_BYTES = 4096  # a WAV's chunks before its samples fit in this (talkgate's own header is 44)
UNKNOWN_SIZE = 0xFFFFFFFF  # a data chunk whose size was never patched: it runs to the end of the file

Int16Array = npt.NDArray[np.int16]


@dataclass(frozen=True, slots=True)
class WavLayout:
    """Where a PCM16 WAV's samples are and how they are laid out."""

    data_offset: int
    data_bytes: int
    channels: int
    sample_rate: int

    @property
    def frames(self) -> int:
        return self.data_bytes // (2 * self.channels)


def wav_layout(head: bytes, file_size: int) -> WavLayout:
    """Where the samples of a stored WAV of ``file_size`` bytes are, from its first bytes (at least
    ``HEADER_BYTES`` of them, or the whole file): its data chunk runs as far as its header says,
    or to the end of the file when that size was never written."""
    try:
        info = parse_wav_header(head)
    except AudioError as exc:
        raise StorageError(f"the recording is not a readable WAV: {exc.message}") from exc
    if info.bits != 16 or info.channels < 1:
        raise StorageError(f"the recording is {info.bits}-bit with {info.channels} channels, not PCM16")
    declared = struct.unpack_from("<I", head, info.data_offset - 4)[0]
    left = max(0, file_size - info.data_offset)
    data_bytes = left if declared == UNKNOWN_SIZE else min(declared, left)
    return WavLayout(info.data_offset, data_bytes, info.channels, info.sample_rate)


class PeakSummary:
    """Min and max of each of ``buckets`` equal slices of ``frames`` frames, fed in blocks of any
    size (a block may end mid-sample; the rest is carried over). Holds one block at a time."""

    def __init__(self, frames: int, channels: int, buckets: int = BASE_BUCKETS) -> None:
        self.frames = frames
        self.channels = channels
        self.buckets = max(1, min(buckets, frames))
        self.low = np.full(self.buckets, np.iinfo(np.int16).max, dtype=np.int16)
        self.high = np.full(self.buckets, np.iinfo(np.int16).min, dtype=np.int16)
        self.seen = 0  # frames summarised so far
        self.carry = b""

    def feed(self, block: bytes) -> None:
        data = self.carry + block
        frame_bytes = 2 * self.channels
        usable = min(len(data) // frame_bytes, self.frames - self.seen)
        self.carry = data[usable * frame_bytes :] if usable * frame_bytes < len(data) else b""
        if usable <= 0:
            return
        samples = np.frombuffer(data, dtype="<i2", count=usable * self.channels)
        per_frame = samples.reshape(usable, self.channels)
        self._add(per_frame.min(axis=1), per_frame.max(axis=1))

    def _add(self, low: Int16Array, high: Int16Array) -> None:
        first = self.seen
        self.seen += len(low)
        # Frame i belongs to bucket i * buckets // frames: the block's frames split where that changes.
        ids = (np.arange(first, self.seen, dtype=np.int64) * self.buckets) // self.frames
        starts = np.flatnonzero(np.diff(ids, prepend=-1))
        which = ids[starts]
        np.minimum.at(self.low, which, np.minimum.reduceat(low, starts))
        np.maximum.at(self.high, which, np.maximum.reduceat(high, starts))

    def result(self) -> tuple[Int16Array, Int16Array]:
        """The extremes so far; slices no frame reached yet (a file shorter than its header said)
        are silence."""
        empty = self.low > self.high
        return np.where(empty, 0, self.low).astype(np.int16), np.where(empty, 0, self.high).astype(np.int16)


def narrow(low: Int16Array, high: Int16Array, width: int) -> tuple[list[int], list[int]]:
    """The summary at ``width`` slices (at most as many as it has): each the extremes of the base
    slices it covers."""
    width = max(1, min(width, len(low)))
    starts = (np.arange(width, dtype=np.int64) * len(low)) // width
    return (
        np.minimum.reduceat(low, starts).astype(int).tolist(),
        np.maximum.reduceat(high, starts).astype(int).tolist(),
    )
