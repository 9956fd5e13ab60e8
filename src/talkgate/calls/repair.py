"""Crash repair: what reached the disk before a crash (or a failed store) becomes a valid WAV,
stored and attached to its call, and a call a crash left active is closed as ``recovered``.

Spool files another live process holds (flock) are left alone; a file that cannot be saved now
stays for the next start-up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from talkgate.errors import TalkgateError
from talkgate.persistence.models import AudioSource, CallStatus
from talkgate.protocol.ends import EndReason
from talkgate.recording.wav import LIVE_SUFFIX, repair, try_lock

if TYPE_CHECKING:
    from talkgate.calls.recordings import Recordings

log = logging.getLogger("talkgate.recordings")

SPOOL_NAME = re.compile(r"^(?P<call>[a-z0-9]{1,40})\.(?P<source>[a-z_]{1,16})" + re.escape(LIVE_SUFFIX) + "$")


RETRY_S = 15.0  # how often a running process stores again what its storage refused


async def recover_file(
    recordings: Recordings,
    path: Path,
    call_id: str,
    source: str,
    status: CallStatus | None,
    *,
    ended_only: bool = False,
) -> str | None:
    """Repair one spool file (what reached the disk becomes a valid WAV), store it, attach it to
    its call (a file that holds no audio is removed instead: a bare header is no recording).
    Returns the conversation id; None when the file is another process's live recording or cannot
    be saved now (it then stays for the next start-up). ``ended_only``: leave the files of calls
    still active (a running process's retry: their own process, or the next start-up, has them)."""
    fd = await asyncio.to_thread(try_lock, path)
    if fd is None:
        return None  # a live recording of another process
    try:
        call = await recordings.repo.call_by_id(call_id)
        if call is None:
            log.warning("spool file %s belongs to no call; left in place", path.name)
            return None
        if ended_only and call.status == CallStatus.ACTIVE:
            return None
        data_bytes = await asyncio.to_thread(repair, fd)
        if data_bytes == 0:  # the recording never received audio: a bare header is no recording
            await asyncio.to_thread(path.unlink, missing_ok=True)
            await recordings.repo.mark_recording(call.conversation_id, None)
        else:
            key = recordings.new_key(call.id, source)
            nbytes = await recordings.storage.put_file(key, path)
            await recordings.link(call, key, source, nbytes, status)
        if call.status == CallStatus.ACTIVE and status is CallStatus.RECOVERED:
            await recordings.repo.finish_call(
                call.conversation_id, status=CallStatus.RECOVERED, end_reason=EndReason.SERVER_CRASH
            )
        log.warning("recording %s repaired: %d bytes of audio kept", call.conversation_id, data_bytes)
        return call.conversation_id
    except TalkgateError as exc:
        log.error("spool file %s could not be repaired: %s", path.name, exc.message)
        return None
    finally:
        os.close(fd)


def spool_files(recordings: Recordings) -> list[tuple[Path, str, str]]:
    """The spool's recordings as (path, call id, source), by name."""
    if not recordings.spool.is_dir():
        return []
    found = []
    for path in sorted(recordings.spool.iterdir()):
        match = SPOOL_NAME.match(path.name)
        if match is not None and match["source"] in AudioSource.__members__.values():
            found.append((path, match["call"], match["source"]))
    return found


async def recover(recordings: Recordings) -> list[str]:
    """Repair the WAVs a crash left in the spool, store them, mark their calls ``recovered``.
    Files another live process holds (flock) are left alone. Returns the conversation ids."""
    recovered: list[str] = []
    await recordings.chunks.clean_orphans(recordings.repo, recordings.store_chunks)
    for path, call_id, source in await asyncio.to_thread(spool_files, recordings):
        cid = await recover_file(recordings, path, call_id, source, CallStatus.RECOVERED)
        if cid is not None:
            recovered.append(cid)
    return recovered


async def store_left(recordings: Recordings) -> list[str]:
    """A running process's retry of what its storage refused (a bucket unreachable when the call
    ended): the spool files of ended calls are stored now, without waiting for a restart. Files
    this process is still writing or finishing, another live process's, and those of calls still
    active are left. Returns the conversation ids stored."""
    busy = {live.call_id for live in recordings.live.values()}
    stored: list[str] = []
    for path, call_id, source in await asyncio.to_thread(spool_files, recordings):
        if call_id in busy:
            continue
        try:
            cid = await recover_file(recordings, path, call_id, source, None, ended_only=True)
        except Exception as exc:  # the database is away too: the next round tries again
            log.error("spool file %s not stored yet: %s", path.name, type(exc).__name__)
            continue
        if cid is not None:
            stored.append(cid)
    return stored


async def keep_storing(recordings: Recordings) -> None:
    """Runs for the life of the process: ``store_left`` every ``RETRY_S`` seconds."""
    while True:
        await asyncio.sleep(RETRY_S)
        stored = await store_left(recordings)
        if stored:
            log.warning("stored %d recording(s) the storage had refused: %s", len(stored), ", ".join(stored))
