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


async def recover_file(
    recordings: Recordings, path: Path, call_id: str, source: str, status: CallStatus | None
) -> str | None:
    """Repair one spool file (what reached the disk becomes a valid WAV), store it, attach it to
    its call (a file that holds no audio is removed instead: a bare header is no recording).
    Returns the conversation id; None when the file is another process's live recording or cannot
    be saved now (it then stays for the next start-up)."""
    fd = await asyncio.to_thread(try_lock, path)
    if fd is None:
        return None  # a live recording of another process
    try:
        data_bytes = await asyncio.to_thread(repair, fd)
        call = await recordings.repo.call_by_id(call_id)
        if call is None:
            log.warning("spool file %s belongs to no call; left in place", path.name)
            return None
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


async def recover(recordings: Recordings) -> list[str]:
    """Repair the WAVs a crash left in the spool, store them, mark their calls ``recovered``.
    Files another live process holds (flock) are left alone. Returns the conversation ids."""
    recovered: list[str] = []
    await recordings.chunks.clean_orphans(recordings.repo, recordings.store_chunks)
    if not recordings.spool.is_dir():
        return recovered
    for path in sorted(recordings.spool.iterdir()):
        match = SPOOL_NAME.match(path.name)
        if match is None or match["source"] not in AudioSource.__members__.values():
            continue
        cid = await recover_file(recordings, path, match["call"], match["source"], CallStatus.RECOVERED)
        if cid is not None:
            recovered.append(cid)
    return recovered
