"""The apps' uploaded chunks in the spool folder, and the spool's bounds.

An app may upload its own copy of a call's audio (``POST /api/calls/{id}/chunks``); talkgate appends
it to ``<call id>.chunks.pcm`` in the spool folder until the call ends, when it becomes the call's
recording or, the call having a better one, is deleted. Bounds:

- one call's chunks: ``TALKGATE_MAX_CALL_CHUNKS_BYTES`` (413 ``too_much_audio``);
- everything in the spool folder, live recordings included: ``TALKGATE_MAX_SPOOL_BYTES``; past it a
  chunk upload is refused (507 ``spool_full``). Live recordings (push-to-talk relay, media stream)
  are not stopped: a call in progress is never cut short or silently left unrecorded. Each
  refusal is logged with the spool's size.

Files nobody will use (their call ended, or never existed) are deleted at call end and at start-up.
A chunk file is appended to under an exclusive ``flock``, so the start-up cleanup of one process
never deletes a file another process is writing.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from talkgate.errors import ErrorCode, ProtocolError, StorageError
from talkgate.persistence.models import CallLog, CallStatus
from talkgate.persistence.repository import Repository
from talkgate.recording.wav import try_lock

log = logging.getLogger("talkgate.spool")

CHUNKS_SUFFIX = ".chunks.pcm"
CHUNKS_NAME = re.compile(r"^(?P<call>[a-z0-9]{1,40})" + re.escape(CHUNKS_SUFFIX) + "$")
# The folder is measured again at most this often; bytes appended meanwhile are added as they come.
RESCAN_S = 1.0


def folder_bytes(directory: Path) -> int:
    """The size of the regular files directly in ``directory`` (blocking)."""
    total = 0
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:  # finished and moved away meanwhile
                    continue
    except FileNotFoundError:
        return 0
    return total


# How often a stop waiting for the app's last upload looks again (``ChunkSpool.wait_for``).
CHUNK_POLL_S = 0.05


class ChunkSpool:
    def __init__(self, directory: Path, *, max_total: int, max_per_call: int) -> None:
        self.directory = directory
        self.max_total = max_total
        self.max_per_call = max_per_call
        self._lock = threading.Lock()  # appends run on worker threads
        self._measured = 0
        self._measured_at = float("-inf")
        self._appended_since = 0

    def path(self, call_id: str) -> Path:
        return self.directory / f"{call_id}{CHUNKS_SUFFIX}"

    def used_bytes(self) -> int:
        """The spool folder's size, measured at most every ``RESCAN_S`` (blocking)."""
        with self._lock:
            if time.monotonic() - self._measured_at > RESCAN_S:
                self._measured = folder_bytes(self.directory)
                self._measured_at = time.monotonic()
                self._appended_since = 0
            return self._measured + self._appended_since

    def _admit(self, nbytes: int) -> None:
        used = self.used_bytes()
        if used + nbytes > self.max_total:
            log.warning("spool full: %d of %d bytes used; chunk upload refused", used, self.max_total)
            raise StorageError(
                "the server's recording spool is full (TALKGATE_MAX_SPOOL_BYTES); try again later",
                code=ErrorCode.SPOOL_FULL,
            )

    def _append(self, call_id: str, pcm: bytes) -> int:
        self._admit(len(pcm))
        path = self.path(call_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # held for one write: another process's cleanup waits
            size = os.fstat(fd).st_size
            if size + len(pcm) > self.max_per_call:
                raise ProtocolError(
                    f"a call keeps at most {self.max_per_call} bytes of uploaded audio "
                    "(TALKGATE_MAX_CALL_CHUNKS_BYTES)",
                    code=ErrorCode.TOO_MUCH_AUDIO,
                )
            os.write(fd, pcm)
        finally:
            os.close(fd)
        with self._lock:
            self._appended_since += len(pcm)
        return size + len(pcm)

    async def append(self, call_id: str, pcm: bytes) -> int:
        """Add ``pcm`` to the call's chunks; returns their size."""
        return await asyncio.to_thread(self._append, call_id, pcm)

    async def wait_for(self, call_id: str, nbytes: int, within_s: float) -> int:
        """The call's chunks once they hold ``nbytes`` (what the app says it sent), or as they are
        after ``within_s``; their size. A closing page's last upload and its stop leave together and
        may arrive in either order: the stop waits for the upload instead of ending without it."""
        deadline = time.monotonic() + within_s
        while True:
            size = await asyncio.to_thread(self._size, call_id)
            if size >= nbytes or time.monotonic() >= deadline:
                return size
            await asyncio.sleep(CHUNK_POLL_S)

    def _size(self, call_id: str) -> int:
        try:
            return self.path(call_id).stat().st_size
        except FileNotFoundError:
            return 0

    async def discard(self, call_id: str) -> None:
        """The call has ended: its chunks, if any are left, will never be used."""
        await asyncio.to_thread(self.path(call_id).unlink, missing_ok=True)
        with self._lock:
            self._measured_at = float("-inf")  # measured again at the next upload

    async def clean_orphans(self, repo: Repository, store: Callable[[CallLog], Awaitable[bool]]) -> list[str]:
        """Start-up: delete the chunk files of calls that do not exist or have ended with a
        recording; ``store`` those of ended calls without one (their chunks are all they have).
        Files of active calls, and files another process holds, are left. Returns the names."""
        if not self.directory.is_dir():
            return []
        cleaned = []
        for path in sorted(self.directory.iterdir()):
            match = CHUNKS_NAME.match(path.name)
            if match is None:
                continue
            call = await repo.call_by_id(match["call"])
            if call is not None and call.status == CallStatus.ACTIVE:
                continue
            if call is not None and not call.audio_key and await store(call):
                cleaned.append(path.name)
                continue
            if await asyncio.to_thread(_unlink_unless_held, path):
                cleaned.append(path.name)
        if cleaned:
            log.warning("spool: %d chunk file(s) of ended or unknown calls cleaned", len(cleaned))
        return cleaned


def _unlink_unless_held(path: Path) -> bool:
    try:
        fd = try_lock(path)
    except FileNotFoundError:
        return False
    if fd is None:
        return False  # being appended to by another process
    try:
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)
    return True
