"""Direct calls: the page talks to the provider itself (optionally with media-stream recording);
talkgate signs the start, keeps the call log and the app's own chunks, takes the provider's
post-call webhooks, and ends the call through the recording fallback chain."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from talkgate.calls import ending, post_call
from talkgate.calls.media import media_url
from talkgate.calls.runtime import Runtime
from talkgate.errors import AudioError, ConflictError, ErrorCode
from talkgate.persistence.models import CallLog, CallStatus, utcnow
from talkgate.protocol.audio import b64decode_audio
from talkgate.protocol.elevenlabs_rest import PostCallAudio, PostCallTranscription, WebhookEvent

log = logging.getLogger("talkgate.calls")

TOUCH_EVERY = 0.1  # of TALKGATE_CALL_IDLE_TIMEOUT: how stale a call's last sign of life may be


@dataclass(frozen=True)
class DirectStart:
    signed_url: str
    conversation_id: str | None
    media_streaming: bool


async def start(
    rt: Runtime, user_id: str, voice: str | None, conversation_id: str | None, since: Any
) -> DirectStart:
    """A signed URL for the voice's agent; with a conversation id, its call log too, and with media
    streaming on, the conversation is started with its audio streamed to talkgate's media socket.
    ``since``: calls started before it no longer count as active."""
    settings = rt.settings
    agent_id = settings.agent_id_for(voice)
    if conversation_id is None:
        return DirectStart(await rt.elevenlabs.signed_url(agent_id), None, False)
    # ``conversation_id`` is talkgate's id for the call, never the provider's: the provider's id is
    # only what the provider answers to the start below (no start, no provider id, no provider audio).
    await rt.repo.create_call(
        user_id,
        conversation_id,
        agent_id=agent_id,
        voice=voice or "default",
        cap=rt.call_cap(since),
    )
    if settings.media_streaming_enabled:
        return await _start_streaming(rt, user_id, agent_id, conversation_id)
    signed, provider_cid = await rt.elevenlabs.signed_url_for_conversation(agent_id)
    if provider_cid is not None:
        await rt.repo.own_provider_conversation(user_id, conversation_id, provider_cid)
    return DirectStart(signed, conversation_id, False)


async def _start_streaming(rt: Runtime, user_id: str, agent_id: str, conversation_id: str) -> DirectStart:
    started = await rt.elevenlabs.start_media_conversation(agent_id, media_url(rt.settings, conversation_id))
    if not await rt.repo.issue_media(user_id, conversation_id, started.conversation_id):
        raise ConflictError("this call has ended or its media recording was already made")
    return DirectStart(started.signed_url, conversation_id, started.media_streaming)


def _ended(what: str = "audio") -> ConflictError:
    return ConflictError(f"this call has ended; it takes no more {what}", code=ErrorCode.CALL_ENDED)


async def open_for_chunks(rt: Runtime, user_id: str, conversation_id: str) -> CallLog:
    """The user's call, if it still takes the app's chunks (an ended call's would never be used)."""
    call = await rt.repo.get_call(user_id, conversation_id)
    if call.status != CallStatus.ACTIVE:
        raise _ended()
    return call


async def add_transcript_line(
    rt: Runtime, user_id: str, conversation_id: str, line: dict[str, Any], *, limit: int
) -> int:
    """A line the page heard itself, for a call that does not pass through talkgate (direct,
    avatar): a relayed call's transcript is what talkgate heard from the provider, and an ended
    call's is closed, so neither takes an app's lines (they would put words in the agent's mouth)."""
    call = await rt.repo.get_call(user_id, conversation_id)
    if post_call.relayed(call):
        raise ConflictError(
            "talkgate writes a relayed call's transcript itself; it takes no lines from the app"
        )
    if call.status != CallStatus.ACTIVE:
        raise _ended("transcript lines")
    count = await rt.repo.append_transcript(user_id, conversation_id, [line], limit=limit, active_only=True)
    if count is None:  # ended between the two reads
        raise _ended("transcript lines")
    return count


async def add_chunk(rt: Runtime, call: CallLog, pcm: bytes) -> int:
    """Append the app's own audio (PCM16 16 kHz mono); the call's total chunk bytes."""
    total = await rt.recordings.add_chunk(call, pcm)
    now = await rt.repo.call_by_conversation(call.conversation_id)
    if now is None or now.status != CallStatus.ACTIVE:  # ended while this was written: no orphan
        await rt.recordings.chunks.discard(call.id)
        raise _ended()
    # A sign of life for the idle reaper (calls.idle), written at most every TOUCH_EVERY of the
    # timeout: a page uploading every second costs no write per chunk.
    idle_s = rt.settings.call_idle_timeout_s
    if idle_s and utcnow() - now.updated_at > timedelta(seconds=idle_s * TOUCH_EVERY):
        await rt.repo.touch_call(call.conversation_id)
    return total


async def end(rt: Runtime, user_id: str, conversation_id: str) -> CallLog:
    """Finalise the call: media stream's recording, else the relay's, else the app's chunks, else
    the provider's; the call log says which. Idempotent."""
    call = await rt.repo.get_call(user_id, conversation_id)
    return await ending.end_call(rt.recordings, call)


async def apply_provider_event(rt: Runtime, event: WebhookEvent) -> bool:
    """A verified provider webhook: ``post_call_audio`` gives a call without a better recording the
    provider's copy; ``post_call_transcription`` its transcript, analysis and metadata
    (``post_call``). Only the provider's own id, as talkgate recorded it, finds a call: a
    conversation id a client chose for its call never matches a provider's event."""
    call = await rt.repo.call_by_provider_conversation("elevenlabs", event.conversation_id)
    if call is None:
        log.info("webhook %s for an unknown conversation; ignored", event.type)
        return False
    if isinstance(event, PostCallTranscription):
        return await post_call.apply_transcription(rt, call, event)
    if not isinstance(event, PostCallAudio):
        log.info("webhook %s for %s; nothing to do", event.type, call.conversation_id)
        return False
    return await _import_webhook_audio(rt, call, event)


async def _import_webhook_audio(rt: Runtime, call: CallLog, event: PostCallAudio) -> bool:
    """The webhook's copy, if it holds audio. A call without audio gets an empty ``full_audio``
    (and a broken copy is no better): answering that with an error would only make the provider
    count a failed delivery and send it again, so it is acknowledged, not used, and the call
    keeps whatever it has or may still get (its own recording, the provider's recording API)."""
    try:
        if not event.full_audio:
            raise AudioError("it carries no audio", code=ErrorCode.EMPTY_AUDIO)
        audio = b64decode_audio(event.full_audio, max_bytes=rt.settings.max_webhook_bytes * 3 // 4)
        return bool(await rt.recordings.import_provider_audio(call, audio))
    except AudioError as exc:
        if exc.code is ErrorCode.CHUNK_TOO_LARGE:
            raise
        log.info("webhook post_call_audio for %s: not used: %s", call.conversation_id, exc.message)
        return False


async def receive_provider_event(rt: Runtime, digest: str, event: WebhookEvent) -> dict[str, Any]:
    """Apply a webhook once: a delivery seen before (same body digest) is ignored; one that fails
    to apply is released, so that the provider's retry may be."""
    if not await rt.repo.claim_webhook(digest, event.type, event.conversation_id[:128]):
        log.info("webhook %s for %s delivered again; ignored", event.type, event.conversation_id)
        return {"ok": True, "used": False, "duplicate": True}
    try:
        return {"ok": True, "used": await apply_provider_event(rt, event)}
    except BaseException:
        with contextlib.suppress(Exception):
            await rt.repo.release_webhook(digest)
        raise
