"""The LiveAvatar routes: parse, call ``talkgate.calls.avatar``, serialize.

The page calls ``keep-alive`` while it is open (talkgate forwards it with the key, so the 5-minute
idle timeout never ends a session someone is looking at), posts each transcription line to the
call log as it arrives (``POST /api/calls/{id}/transcript``), and calls ``stop`` when it is done or
when the provider says ``session.stopped``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from talkgate.calls import avatar
from talkgate.web.api import Rt, User, active_since
from talkgate.web.calls import call_json

ID_PATTERN = r"^avatar_[A-Za-z0-9-]{1,100}$"
KEEP_ALIVE_INTERVAL_MS = 60_000  # the provider's idle timeout is 5 minutes
ACK_TIMEOUT_MS = 5_000  # a push-to-talk command without an acknowledgement by then has failed


class StartAvatar(BaseModel):
    avatarId: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    voiceId: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    contextId: str | None = Field(None, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    language: str = Field("en", min_length=2, max_length=16, pattern=r"^[A-Za-z-]+$")
    sandbox: bool = False

    def choice(self) -> avatar.AvatarChoice:
        return avatar.AvatarChoice(self.avatarId, self.voiceId, self.contextId, self.language, self.sandbox)


class StopAvatar(BaseModel):
    reason: str = Field("USER_CLOSED", max_length=32)
    # The bytes of the call's recording the page has sent through the chunks route, its last upload
    # included: a page closing sends that upload and this stop together, and the stop waits for it.
    uploaded_bytes: int | None = Field(None, ge=0, le=2**40, alias="uploadedBytes")


def started_json(started: avatar.StartedAvatar, simulator: bool) -> dict[str, Any]:
    room = started.room
    return {
        "conversationId": started.conversation_id,
        "sessionId": started.session_id,
        "avatarSessionId": started.avatar_session_id,
        "livekitUrl": room.livekit_url,
        "livekitToken": room.livekit_client_token,
        # The simulator stands in for the LiveKit room with a WebSocket carrying the same JSON: the
        # built-in one, or a `talkgate simulator` holding a key (its reply marks the room), where
        # LiveKit's client would be refused.
        "transport": "simulator" if simulator or room.stand_in else "livekit",
        "maxSessionDuration": room.max_session_duration,
        "keepAliveIntervalMs": KEEP_ALIVE_INTERVAL_MS,
        "ackTimeoutMs": ACK_TIMEOUT_MS,
    }


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/liveavatar", tags=["liveavatar"])

    @router.post("/session")
    async def start_avatar(body: StartAvatar, user: User, rt: Rt) -> Any:
        """Mint a FULL-mode PUSH_TO_TALK session with talkgate's key, start it, and open its call
        log: ``{conversationId, sessionId, livekitUrl, livekitToken, transport, ...}``. The key and the
        provider's session token stay on the server; the page gets only the room's client token. A
        user with ``TALKGATE_MAX_ACTIVE_CALLS_PER_USER`` calls in progress gets 429
        ``too_many_conversations`` and no provider session is made."""
        since = active_since(rt.settings.active_window_hours)
        started = await avatar.start(rt, user.user_id, body.choice(), since)
        return started_json(started, rt.settings.simulator_mode)

    @router.post("/session/{conversation_id}/keep-alive")
    async def keep_alive(conversation_id: str, user: User, rt: Rt) -> Any:
        """The page is still open: keep the provider's session from idling out."""
        await avatar.keep_alive(rt, user.user_id, conversation_id)
        return {"ok": True}

    @router.post("/session/{conversation_id}/stop")
    async def stop_avatar(conversation_id: str, body: StopAvatar, user: User, rt: Rt) -> Any:
        """End the session with the provider (again harmlessly, if it already stopped) and close
        the call log with ``reason``; idempotent."""
        stopped = await avatar.stop(
            rt, user.user_id, conversation_id, body.reason, uploaded_bytes=body.uploaded_bytes
        )
        return call_json(stopped)

    return router
