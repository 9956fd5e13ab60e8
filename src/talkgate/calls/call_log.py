"""Closing a call log when the database may be away: short retries now, then a deferred save."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from talkgate.calls.recordings import Recordings
from talkgate.persistence.retry import retry_transient, transient

log = logging.getLogger("talkgate.calls")

LATER_DELAYS = (5.0,) * 60  # after the short retries: every 5 s for 5 minutes

Close = Callable[[], Awaitable[None]]


async def close_now(close: Close, what: str) -> None:
    """``close`` with the short retries; raises what the last try raised."""
    await retry_transient(close, what)


def still_away(exc: BaseException) -> bool:
    """Worth saving later: the database is (still) unreachable."""
    return transient(exc)


async def save_later(close: Close, what: str, conversation_id: str, recordings: Recordings) -> None:
    """The deferred save: keep trying for a few minutes, then link a recording stored meanwhile."""
    try:
        await retry_transient(close, what, LATER_DELAYS)
        await recordings.relink_by_conversation(conversation_id)
        log.warning("%s saved after the database came back", what)
    except Exception:
        log.exception("%s: given up; the call log stays incomplete", what)
