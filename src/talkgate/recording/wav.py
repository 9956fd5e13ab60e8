"""The streaming WAV file: appended to as audio arrives, header patched on finalise, repaired after
a crash. Blocking file I/O: the recorder calls these from a worker thread, never on the event loop.

A live file carries "size unknown" (0xFFFFFFFF) in its header, which most players read as "to the
end of the file", and holds an exclusive ``flock`` while it is written, so that the start-up repair
of one process never touches a file another live process is still writing.

A live file also hands what it has written to the disk as it goes (``writeback_range``). Left to
the kernel, appended pages wait until they are 30 s old (``vm.dirty_expire_centisecs``), so the
recordings of calls that began together reach the disk together: with 500 calls, 30 s after they
began, one burst of 16 MB per second of audio, the first allocation of 500 files' blocks, the
kernel's flusher and the hypervisor's I/O took the relay's CPU for half a second, and every chunk in
flight waited (``bench/relay.py``: p99 3-146 ms on disk against 2.4 ms on tmpfs, the tail all in that
half second). Asking for each file's writeback every 128 KB (4 s of audio) spreads the same writing
evenly over the calls' lifetime.
"""

from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path

from talkgate.errors import ErrorCode, StorageError
from talkgate.protocol.audio import WAV_HEADER_SIZE, parse_wav_header, wav_header

UNKNOWN_SIZE = 0xFFFFFFFF
LIVE_SUFFIX = ".wav.part"
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
WRITEBACK_BYTES = 128 * 1024  # 4 s of 16 kHz PCM16: a few large writes per file, not one per append


def _open_header(sample_rate: int, channels: int) -> bytes:
    header = bytearray(wav_header(0, sample_rate, channels))
    struct.pack_into("<I", header, 4, UNKNOWN_SIZE)
    struct.pack_into("<I", header, 40, UNKNOWN_SIZE)
    return bytes(header)


def _patch_sizes(fd: int, data_bytes: int) -> None:
    os.pwrite(fd, struct.pack("<I", 36 + data_bytes), 4)
    os.pwrite(fd, struct.pack("<I", data_bytes), 40)


def writeback_range(
    done: int, end: int, *, page: int = PAGE, batch: int = WRITEBACK_BYTES
) -> tuple[int, int] | None:
    """The next range ``(offset, length)`` of a file to hand to the disk, or None while less than
    ``batch`` is ready. ``done`` is where the last range ended, ``end`` the file's size.

    Whole pages only, never the last, partly written one: it would be written again at once, and,
    had it been dropped from the cache meanwhile, first read back from the disk, on the thread that
    writes every call's audio. The first page goes with the first range although the header is
    patched at the end: left alone, every file's first page would reach the disk 30 s after its
    call began, all of them together again.
    """
    stop = end // page * page
    if stop - done < batch:
        return None
    return done, stop - done


class WavWriter:
    """One WAV being written. Each ``write`` reaches the OS at once (no user-space buffer), so a
    killed process loses nothing it had written."""

    def __init__(self, path: Path, *, sample_rate: int = 16000, channels: int = 1) -> None:
        self.path = path
        self.block_align = 2 * channels
        self.data_bytes = 0
        self._written_back = 0  # the file offset up to which writeback was asked for
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(self._fd, _open_header(sample_rate, channels))
        except OSError:
            os.close(self._fd)
            raise

    def write(self, pcm: bytes | memoryview) -> None:
        view = memoryview(pcm)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.data_bytes += len(pcm)
        todo = writeback_range(self._written_back, WAV_HEADER_SIZE + self.data_bytes)
        if todo is not None and hasattr(os, "posix_fadvise"):
            # On Linux, DONTNEED starts writeback of the range's dirty pages without waiting for it,
            # and drops those already clean: the recordings do not crowd the page cache either.
            os.posix_fadvise(self._fd, *todo, os.POSIX_FADV_DONTNEED)
            self._written_back = sum(todo)

    def finalize(self, *, sync: bool = True) -> int:
        """Patch the header with the real sizes, make it durable, close; returns the data bytes."""
        self.patch()
        if sync:
            self.sync_and_close()
        else:
            self.close()
        return self.data_bytes

    def patch(self) -> int:
        """Patch the header with the real sizes (after the last write); returns the data bytes."""
        _patch_sizes(self._fd, self.data_bytes)
        return self.data_bytes

    def sync_and_close(self) -> None:
        """Make the file durable and close it: ``patch`` first, on the thread that wrote it. May run
        on any thread: the recordings of calls that end together wait for their disks side by side,
        not one after another on the thread that writes every call's audio."""
        try:
            os.fdatasync(self._fd)  # the size is unchanged since the last append: data is enough
        finally:
            self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def try_lock(path: Path) -> int | None:
    """An fd holding an exclusive lock on ``path``, or None if a live writer holds it."""
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def repair(fd: int) -> int:
    """Make a WAV whose writer died valid: data size from the file size, a half sample dropped.
    Returns the data bytes."""
    size = os.fstat(fd).st_size
    head = os.pread(fd, WAV_HEADER_SIZE, 0)
    if len(head) < WAV_HEADER_SIZE:
        raise StorageError("recording is shorter than a WAV header", code=ErrorCode.BAD_FORMAT)
    info = parse_wav_header(head)
    align = info.channels * info.bits // 8
    data = size - info.data_offset
    data -= data % align
    os.ftruncate(fd, info.data_offset + data)
    _patch_sizes(fd, data)
    os.fsync(fd)
    return data
