"""Abandoned calls: a direct or avatar call that the app never ends (a crashed tab, a dropped
network, a signed URL nobody used) would stay ``active`` for hours, holding one of its user's
``TALKGATE_MAX_ACTIVE_CALLS_PER_USER`` slots and its chunks in the spool. Every process runs
``keep_reaping``: a call with no sign of life for ``TALKGATE_CALL_IDLE_TIMEOUT`` is ended
``abandoned`` through the usual fallback chain (its recording from what arrived), its avatar
session stopped with the provider.

A sign of life is any write to the call's row (``updated_at``): a chunk, a transcript line, an
avatar keep-alive, a recording starting or ending. A call with a live media socket is left to
it, and relayed calls are ended by the relay itself. Several processes may reap together: the
row's conditional claim (``Repository.claim_idle_call``) lets exactly one of them end a call.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from talkgate.calls import ending
from talkgate.calls.avatar import stop_quietly
from talkgate.calls.runtime import Runtime
from talkgate.errors import NotFoundError
from talkgate.persistence.models import CallLog, utcnow
from talkgate.protocol.ends import EndReason

log = logging.getLogger("talkgate.calls")

BATCH = 50  # calls ended per round: bounds one round's time; the next round takes the rest
MAX_INTERVAL_S = 30.0
# What LiveAvatar is told when talkgate stops a session nobody kept alive.
AVATAR_STOP_REASON = "USER_DISCONNECTED"


def interval(timeout_s: float) -> float:
    """How often to look: a quarter of the timeout (a call ends at most 25 % late), at most 30 s."""
    return min(timeout_s / 4, MAX_INTERVAL_S)


async def reap(rt: Runtime, now: datetime) -> list[str]:
    """End the calls idle for the timeout as of ``now``; their conversation ids."""
    timeout = rt.settings.call_idle_timeout_s
    if not timeout:
        return []
    cutoff = now - timedelta(seconds=timeout)
    ended: list[str] = []
    for call in await rt.repo.idle_calls(cutoff, limit=BATCH):
        if not await rt.repo.claim_idle_call(call.conversation_id, cutoff, now):
            continue  # another process took it, or it showed life or ended meanwhile
        try:
            await end_abandoned(rt, call)
        except Exception:  # claimed, so untouched for another timeout: a later round tries again
            log.exception("call %s: could not end an abandoned call", call.conversation_id)
            continue
        ended.append(call.conversation_id)
    return ended


async def end_abandoned(rt: Runtime, call: CallLog) -> CallLog:
    """Stop the avatar's provider session (best effort), then end the call as the app's end would,
    with ``abandoned``: the recording from what arrived, the chunks then discarded."""
    if call.provider == "liveavatar" and call.provider_conversation_id and rt.liveavatar is not None:
        await stop_quietly(rt.liveavatar, call.provider_conversation_id, AVATAR_STOP_REASON)
    row = await ending.end_call(rt.recordings, call, EndReason.ABANDONED)
    if call.session_id and call.provider == "liveavatar":
        with contextlib.suppress(NotFoundError):  # its session row: the call log ended above
            await rt.repo.end_session(call.user_id, call.session_id)
    log.warning(
        "call %s of %s: no sign of life for %.0f s; ended %s",
        call.conversation_id,
        call.user_id,
        rt.settings.call_idle_timeout_s,
        row.end_reason,
    )
    return row


async def keep_reaping(
    rt: Runtime,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Runs for the life of the process (not at all with the timeout 0)."""
    timeout = rt.settings.call_idle_timeout_s
    if not timeout:
        return
    while True:
        await sleep(interval(timeout))
        try:
            await reap(rt, clock())
        except Exception:  # the database is away: the next round tries again
            log.exception("abandoned calls: this round failed")
