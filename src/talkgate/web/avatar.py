"""LiveAvatar push-to-talk sessions (seed 003): talkgate mints and starts the session with its key,
the page joins the room and runs the push-to-talk command machine, and talkgate keeps the call log.

The page calls ``keep-alive`` while it is open (talkgate forwards it with the key, so the 5-minute
idle timeout never ends a session someone is looking at), posts each transcription line to the
call log as it arrives (``POST /api/calls/{id}/transcript``), and calls ``stop`` when it is done or
when the provider says ``session.stopped``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from talkgate.errors import ErrorCode, ProtocolError, TalkgateError
from talkgate.persistence.models import CallLog, CallStatus, utcnow
from talkgate.protocol.liveavatar import END_REASONS
from talkgate.providers.liveavatar import LiveAvatarProvider
from talkgate.web.api import Rt, User
from talkgate.web.calls import call_json
from talkgate.web.runtime import Runtime

log = logging.getLogger("talkgate.avatar")

CID_PREFIX = "avatar_"
ID_PATTERN = r"^avatar_[A-Za-z0-9-]{1,100}$"
KEEP_ALIVE_INTERVAL_MS = 60_000  # the provider's idle timeout is 5 minutes
ACK_TIMEOUT_MS = 5_000  # a push-to-talk command without an acknowledgement by then has failed


class StartAvatar(BaseModel):
    avatarId: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    voiceId: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    contextId: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    language: str = Field("en", min_length=2, max_length=16, pattern=r"^[A-Za-z-]+$")
    sandbox: bool = False


class StopAvatar(BaseModel):
    reason: str = Field("USER_CLOSED", max_length=32)


def provider_of(rt: Runtime) -> LiveAvatarProvider:
    provider: LiveAvatarProvider | None = rt.liveavatar
    if provider is None:
        raise ProtocolError(
            "LiveAvatar is not configured on this server (LIVEAVATAR_API_KEY)", code=ErrorCode.NOT_CONFIGURED
        )
    return provider


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/liveavatar", tags=["liveavatar"])

    @router.post("/session")
    async def start_avatar(body: StartAvatar, user: User, rt: Rt) -> Any:
        """Mint a FULL-mode PUSH_TO_TALK session with talkgate's key, start it, and open its call
        log: ``{conversationId, sessionId, livekitUrl, livekitToken, transport, ...}``. The key and the
        provider's session token stay on the server; the page gets only the room's client token."""
        settings = rt.settings
        provider = provider_of(rt)
        avatar_id = body.avatarId or settings.liveavatar_avatar_id
        if not avatar_id:
            raise ProtocolError("no avatar configured: set LIVEAVATAR_AVATAR_ID", code=ErrorCode.BAD_REQUEST)
        token = await provider.create_token(
            avatar_id,
            voice_id=body.voiceId or settings.liveavatar_voice_id,
            context_id=body.contextId or settings.liveavatar_context_id,
            language=body.language,
            is_sandbox=body.sandbox,
        )
        try:
            room = await provider.start(token)
        except TalkgateError:
            await _stop_quietly(provider, token.session_id, "SERVER_ERROR")
            raise
        cid = CID_PREFIX + token.session_id
        try:
            session, _call = await rt.repo.open_conversation(
                user.user_id,
                cid,
                metadata={"provider": "liveavatar", "avatarId": avatar_id},
                provider="liveavatar",
                provider_conversation_id=token.session_id,
                agent_id=avatar_id,
                voice=(body.voiceId or settings.liveavatar_voice_id or "default")[:32],
            )
        except BaseException:
            await _stop_quietly(provider, token.session_id, "SERVER_ERROR")
            raise
        log.info("avatar session %s started for %s", token.session_id, user.user_id)
        return {
            "conversationId": cid,
            "sessionId": session.session_id,
            "avatarSessionId": token.session_id,
            "livekitUrl": room.livekit_url,
            "livekitToken": room.livekit_client_token,
            # The simulator stands in for the LiveKit room with a WebSocket carrying the same JSON.
            "transport": "simulator" if settings.simulator_mode else "livekit",
            "maxSessionDuration": room.max_session_duration,
            "keepAliveIntervalMs": KEEP_ALIVE_INTERVAL_MS,
            "ackTimeoutMs": ACK_TIMEOUT_MS,
        }

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

    @router.post("/session/{conversation_id}/keep-alive")
    async def keep_alive(conversation_id: str, user: User, rt: Rt) -> Any:
        """The page is still open: keep the provider's session from idling out."""
        call, avatar_session, _ = await avatar_call(rt, user.user_id, conversation_id)
        if call.status != CallStatus.ACTIVE:
            raise ProtocolError("this avatar session has ended", code=ErrorCode.NO_CONVERSATION)
        await provider_of(rt).keep_alive(avatar_session)
        return {"ok": True}

    @router.post("/session/{conversation_id}/stop")
    async def stop_avatar(conversation_id: str, body: StopAvatar, user: User, rt: Rt) -> Any:
        """End the session with the provider (again harmlessly, if it already stopped) and close
        the call log with ``reason``; idempotent."""
        if body.reason not in END_REASONS:
            raise ProtocolError(f"unknown reason {body.reason!r}", code=ErrorCode.BAD_REQUEST)
        call, avatar_session, session_id = await avatar_call(rt, user.user_id, conversation_id)
        if call.status == CallStatus.ACTIVE:
            await _stop_quietly(provider_of(rt), avatar_session, body.reason)
            ended = utcnow()
            await rt.repo.close_conversation(
                user.user_id,
                session_id,
                conversation_id,
                status=CallStatus.ENDED,
                duration_ms=int((ended - call.started_at).total_seconds() * 1000),
                end_reason=body.reason.lower(),
            )
            call = await rt.repo.get_call(user.user_id, conversation_id)
        return call_json(call)

    return router


async def _stop_quietly(provider: LiveAvatarProvider, session_id: str, reason: str) -> None:
    """Stopping is best effort: a session the provider already ended must not fail our end."""
    try:
        await provider.stop(session_id, reason)
    except TalkgateError as exc:
        log.warning("avatar session %s: stop: %s", session_id, exc.message)
