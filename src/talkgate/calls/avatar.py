"""LiveAvatar push-to-talk calls: talkgate mints and starts the session with its key, opens the call
log, forwards keep-alives, and ends the session and its call log (idempotent). Every avatar
call counts toward ``TALKGATE_MAX_ACTIVE_CALLS_PER_USER``, checked before the provider is asked."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from talkgate.calls.runtime import Runtime
from talkgate.errors import ErrorCode, ProtocolError, TalkgateError
from talkgate.persistence.models import CallLog, CallStatus, cuid, utcnow
from talkgate.protocol.ends import EndReason
from talkgate.protocol.liveavatar import END_REASONS
from talkgate.providers.liveavatar import AvatarRoom, LiveAvatarProvider

log = logging.getLogger("talkgate.avatar")

CID_PREFIX = "avatar_"
# How long a stop waits for the page's last recording upload to arrive (it left with the stop).
UPLOAD_GRACE_S = 3.0


@dataclass(frozen=True)
class AvatarChoice:
    """What the page asked for, each field falling back to the server's setting."""

    avatar_id: str | None
    voice_id: str | None
    context_id: str | None
    language: str
    sandbox: bool


@dataclass(frozen=True)
class StartedAvatar:
    conversation_id: str
    session_id: str
    avatar_session_id: str
    room: AvatarRoom


def provider_of(rt: Runtime) -> LiveAvatarProvider:
    provider: LiveAvatarProvider | None = rt.liveavatar
    if provider is None:
        raise ProtocolError(
            "LiveAvatar is not configured on this server (LIVEAVATAR_API_KEY)", code=ErrorCode.NOT_CONFIGURED
        )
    return provider


async def start(rt: Runtime, user_id: str, choice: AvatarChoice, since: datetime) -> StartedAvatar:
    """Open the call log, capped like every call in progress (``since``: calls started before it no
    longer count), then mint a FULL-mode PUSH_TO_TALK session with talkgate's key and start it. The
    cap is taken first, so a refused start asks the provider for nothing; a call log whose session
    did not start is closed as failed, and a session started without its call log is stopped."""
    settings = rt.settings
    provider = provider_of(rt)
    avatar_id = choice.avatar_id or settings.liveavatar_avatar_id
    if not avatar_id:
        raise ProtocolError("no avatar configured: set LIVEAVATAR_AVATAR_ID", code=ErrorCode.BAD_REQUEST)
    voice_id = choice.voice_id or settings.liveavatar_voice_id
    # talkgate's id for the call, chosen before the provider's session exists (which it names).
    session, call = await rt.repo.open_conversation_capped(
        user_id,
        CID_PREFIX + cuid(),
        metadata={"provider": "liveavatar", "avatarId": avatar_id},
        provider="liveavatar",
        agent_id=avatar_id,
        voice=(voice_id or "default")[:32],
        cap=rt.call_cap(since),
    )
    try:
        avatar_session, room = await _start_session(rt, provider, choice, avatar_id, voice_id)
    except BaseException:
        await _fail_call_log(rt, user_id, session.session_id, call.conversation_id)
        raise
    try:
        if not await rt.repo.own_provider_conversation(user_id, call.conversation_id, avatar_session):
            raise ProtocolError("this avatar session has ended", code=ErrorCode.NO_CONVERSATION)
    except BaseException:
        await stop_quietly(provider, avatar_session, "SERVER_ERROR")
        await _fail_call_log(rt, user_id, session.session_id, call.conversation_id)
        raise
    log.info("avatar session %s started for %s", avatar_session, user_id)
    return StartedAvatar(call.conversation_id, session.session_id, avatar_session, room)


async def _start_session(
    rt: Runtime, provider: LiveAvatarProvider, choice: AvatarChoice, avatar_id: str, voice_id: str | None
) -> tuple[str, AvatarRoom]:
    """The provider's session id and room; a session minted but not started is stopped again."""
    token = await provider.create_token(
        avatar_id,
        voice_id=voice_id,
        context_id=choice.context_id or rt.settings.liveavatar_context_id,
        language=choice.language,
        is_sandbox=choice.sandbox,
    )
    try:
        room = await provider.start(token)
    except BaseException:
        await stop_quietly(provider, token.session_id, "SERVER_ERROR")
        raise
    return token.session_id, room


async def _fail_call_log(rt: Runtime, user_id: str, session_id: str, conversation_id: str) -> None:
    """The call log of a start that did not happen: closed as failed, so it stops counting."""
    try:
        await rt.repo.close_conversation(
            user_id,
            session_id,
            conversation_id,
            duration_ms=0,
            status=CallStatus.FAILED,
            end_reason=EndReason.ERROR,
        )
    except Exception:
        log.exception("call log %s: could not close a failed avatar start", conversation_id)


async def avatar_call(rt: Runtime, user_id: str, conversation_id: str) -> tuple[CallLog, str, str]:
    """The user's avatar call with its LiveAvatar session id and talkgate session id; another
    user's call is not found, and a call that is not an avatar session is refused (an app
    may name an ElevenLabs call ``avatar_…`` too)."""
    if not conversation_id.startswith(CID_PREFIX):
        raise ProtocolError("not an avatar session id", code=ErrorCode.BAD_REQUEST)
    call = await rt.repo.get_call(user_id, conversation_id)
    if call.provider != "liveavatar" or not call.provider_conversation_id or not call.session_id:
        raise ProtocolError("not an avatar session id", code=ErrorCode.BAD_REQUEST)
    return call, call.provider_conversation_id, call.session_id


async def keep_alive(rt: Runtime, user_id: str, conversation_id: str) -> None:
    """The page is still open: keep the provider's session from idling out."""
    call, avatar_session, _ = await avatar_call(rt, user_id, conversation_id)
    if call.status != CallStatus.ACTIVE:
        raise ProtocolError("this avatar session has ended", code=ErrorCode.NO_CONVERSATION)
    await provider_of(rt).keep_alive(avatar_session)
    await rt.repo.touch_call(conversation_id)  # a sign of life for the idle reaper (calls.idle)


async def stop(
    rt: Runtime, user_id: str, conversation_id: str, reason: str, *, uploaded_bytes: int | None = None
) -> CallLog:
    """End the session with the provider (again harmlessly, if it already stopped) and close the
    call log with ``reason`` (one of LiveAvatar's stop reasons, or ``NEVER_CONNECTED``: the page
    could not join the room, so the call failed); idempotent. ``uploaded_bytes``: what the page
    says it sent of the recording; the recording is stored once that much has arrived (at most
    ``UPLOAD_GRACE_S`` later)."""
    # The page ends with the provider's reason (``USER_CLOSED``) or the stored one (``user_closed``).
    reason = reason.upper()
    never_connected = reason == EndReason.NEVER_CONNECTED.upper()
    if reason not in END_REASONS and not never_connected:
        raise ProtocolError(f"unknown reason {reason!r}", code=ErrorCode.BAD_REQUEST)
    call, avatar_session, session_id = await avatar_call(rt, user_id, conversation_id)
    if call.status != CallStatus.ACTIVE:
        return call
    # LiveAvatar knows no such reason: to it, the user never came.
    await stop_quietly(provider_of(rt), avatar_session, "USER_DISCONNECTED" if never_connected else reason)
    # The audio flows in the room, not through talkgate: the page's upload of both sides (the
    # chunks route) is the call's recording. Stored before the close, so that a chunk arriving
    # meanwhile still finds the call active; anything later is refused as ``call_ended``.
    if uploaded_bytes:
        await rt.recordings.chunks.wait_for(call.id, uploaded_bytes, UPLOAD_GRACE_S)
    settled = await _store_page_recording(rt, call)
    ended = utcnow()
    await rt.repo.close_conversation(
        user_id,
        session_id,
        conversation_id,
        status=CallStatus.FAILED if never_connected else CallStatus.ENDED,
        duration_ms=int((ended - call.started_at).total_seconds() * 1000),
        end_reason=EndReason.NEVER_CONNECTED if never_connected else EndReason.from_avatar(reason),
    )
    if settled:
        await rt.recordings.chunks.discard(call.id)  # a chunk that came in late is never used
    return await rt.repo.get_call(user_id, conversation_id)


async def _store_page_recording(rt: Runtime, call: CallLog) -> bool:
    """The page's chunks as the call's recording. False when storing failed: the chunks stay in
    the spool, and the next start-up stores those of an ended call that has no recording."""
    try:
        if not await rt.recordings.store_chunks(call):
            log.info("avatar call %s: the page uploaded no audio; no recording", call.conversation_id)
    except Exception:
        log.exception("avatar call %s: its recording could not be stored now", call.conversation_id)
        return False
    return True


async def stop_quietly(provider: LiveAvatarProvider, session_id: str, reason: str) -> None:
    """Stopping is best effort: a session the provider already ended must not fail our end."""
    try:
        await provider.stop(session_id, reason)
    except TalkgateError as exc:
        log.warning("avatar session %s: stop: %s", session_id, exc.message)
