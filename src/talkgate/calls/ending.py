"""The call-end fallback chain: which recording a call ends with.

The media socket's recording first, else the relay's (both waited for a while if still being
written, here or in another process, and relinked if stored during a database outage), else the
app's own chunks, else the provider's recording API. Idempotent: ending an ended call returns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from talkgate.calls.recordings import Recordings
from talkgate.errors import ProviderError, TalkgateError
from talkgate.persistence.models import AudioSource, CallLog, CallStatus, utcnow
from talkgate.protocol.ends import EndReason

log = logging.getLogger("talkgate.recordings")

LIVE_SOURCES = (AudioSource.MEDIA_STREAM, AudioSource.RELAY)
POLL_S = 0.1  # another process is writing the recording; the database is the only signal


async def end_call(recordings: Recordings, call: CallLog, reason: EndReason = EndReason.CALL_END) -> CallLog:
    """Give the call the best recording there is, close it (``reason``) if it is still active, and
    return its row as it is now."""
    repo = recordings.repo
    if not call.audio_key and call.audio_source in LIVE_SOURCES:
        call = await wait_for_live(recordings, call)
    if not call.audio_key and await recordings.relink(call):
        call = await repo.call_by_conversation(call.conversation_id) or call
    if not call.audio_key and not await recordings.store_chunks(call):
        await fetch_provider_audio(recordings, call)
    if call.status == CallStatus.ACTIVE:
        ended = utcnow()
        await repo.finish_call(
            call.conversation_id,
            ended_at=ended,
            duration_ms=int((ended - call.started_at).total_seconds() * 1000),
            end_reason=reason,
            active_only=True,
        )
    await recordings.chunks.discard(call.id)  # stored above, or the call has a better recording
    row = await repo.call_by_conversation(call.conversation_id)
    assert row is not None
    return row


async def wait_for_live(recordings: Recordings, call: CallLog) -> CallLog:
    """A recording that is still being written (here or in another process) is the best source:
    give it ``call_end_wait_s`` to finish."""
    wait_s = recordings.settings.call_end_wait_s
    deadline = time.monotonic() + wait_s
    live = recordings.live.get(call.conversation_id)
    if live is not None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(live.done.wait(), wait_s)
    while True:
        row = await recordings.repo.call_by_conversation(call.conversation_id)
        assert row is not None
        # A live recording that ended without audio no longer names its source: stop waiting.
        if row.audio_key or row.audio_source not in LIVE_SOURCES or time.monotonic() >= deadline:
            return row
        await asyncio.sleep(POLL_S)


async def fetch_provider_audio(recordings: Recordings, call: CallLog) -> None:
    """The provider's recording API, joined only through the id the provider gave talkgate for
    this call: a conversation id a client named is never sent to the provider."""
    if call.provider != "elevenlabs" or not call.provider_conversation_id:
        log.info("call %s: no provider conversation known; no provider recording", call.conversation_id)
        return
    try:
        audio = await recordings.provider.recording(call.provider_conversation_id)
        await recordings.import_provider_audio(call, audio)
    except (ProviderError, TalkgateError) as exc:
        log.warning("call %s: no recording from the provider: %s", call.conversation_id, exc.message)


# Why a call has no recording, in words a user reads on the call page and an app in the API.
NO_RECORDING = {
    "liveavatar": "no audio came from the page: an avatar call's audio flows between the page and the "
    "avatar, and only what the page uploaded while the call went on is kept",
    "elevenlabs": "no audio reached talkgate, and the provider had none to give",
}
NOT_STARTED = "the call failed before any audio could flow"
NEVER_CONNECTED = "the call never connected (the page could not join the avatar's room), so no audio flowed"


def recording_state(call: CallLog) -> tuple[str, str | None]:
    """``ready`` (served at ``audioUrl``), ``in_progress`` (the call goes on; what is recorded is
    stored when it ends) or ``none`` with the reason."""
    if call.audio_key:
        return "ready", None
    if call.status == CallStatus.ACTIVE:
        return "in_progress", None
    if call.end_reason == EndReason.NEVER_CONNECTED:
        return "none", NEVER_CONNECTED
    if call.status == CallStatus.FAILED:
        return "none", NOT_STARTED
    return "none", NO_RECORDING.get(call.provider, NO_RECORDING["elevenlabs"])
