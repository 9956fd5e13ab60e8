"""LiveAvatar push-to-talk (avatar mode): the REST envelope, the session bodies, and the data-channel
vocabulary.

REST responses are ``{code, data, message}``; trust the HTTP status and ``data``, not ``code``
(the public spec and the official SDK disagree on the success code; docs/protocol.md §4).
Realtime commands travel on topic ``agent-control``, events on ``agent-response``, as JSON objects
with an ``event_type``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import quote

from talkgate.errors import ErrorCode, ProtocolError

CONTROL_TOPIC = "agent-control"
RESPONSE_TOPIC = "agent-response"

# ``POST /v1/sessions/stop`` reasons, also ``session.stopped``'s ``end_reason``.
END_REASONS = frozenset(
    {
        "UNKNOWN",
        "USER_DISCONNECTED",
        "SERVER_ERROR",
        "IDLE_TIMEOUT",
        "NO_CREDITS",
        "USER_CLOSED",
        "AVATAR_DELETED",
        "MAX_DURATION_REACHED",
        "ZOMBIE_SESSION_REAP",
        "AGENT_HANG_UP",
    }
)


# The simulator's room stands in for LiveKit's media tracks as well. A client that sends
# ``{"topic": TRACK_TOPIC, "data": {"event_type": "subscribe"}}`` (as a LiveKit participant is
# subscribed to the avatar's tracks) gets the avatar's picture as one ``video_poster`` packet on that
# topic (``{"poster": a data: URL}``) and its voice as binary frames of ``TRACK_AUDIO_FORMAT``, the
# format of the microphone frames it sends the other way. Without it: data packets only.
TRACK_TOPIC = "simulator-track"
TRACK_AUDIO_FORMAT = "pcm_16000"


class TrackEvent(StrEnum):
    SUBSCRIBE = "subscribe"
    VIDEO_POSTER = "video_poster"


class Command(StrEnum):
    START_PTT = "user.start_push_to_talk"
    STOP_PTT = "user.stop_push_to_talk"
    INTERRUPT = "avatar.interrupt"
    SPEAK_TEXT = "avatar.speak_text"
    SPEAK_RESPONSE = "avatar.speak_response"
    START_LISTENING = "avatar.start_listening"
    STOP_LISTENING = "avatar.stop_listening"


class Event(StrEnum):
    PTT_STARTED = "user.push_to_talk_started"
    PTT_START_FAILED = "user.push_to_talk_start_failed"
    PTT_STOPPED = "user.push_to_talk_stopped"
    PTT_STOP_FAILED = "user.push_to_talk_stop_failed"
    USER_TRANSCRIPTION = "user.transcription"
    AVATAR_TRANSCRIPTION = "avatar.transcription"
    AVATAR_SPEAK_STARTED = "avatar.speak_started"
    AVATAR_SPEAK_ENDED = "avatar.speak_ended"
    SESSION_STOPPED = "session.stopped"


@dataclass(frozen=True, slots=True)
class Envelope:
    code: int | None
    data: Any
    message: str

    @classmethod
    def parse(cls, raw: bytes | str) -> Envelope:
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(
                f"LiveAvatar response is not JSON: {exc}", code=ErrorCode.PROVIDER_ERROR
            ) from exc
        if not isinstance(obj, dict):
            raise ProtocolError("LiveAvatar response is not an object", code=ErrorCode.PROVIDER_ERROR)
        code = obj.get("code")
        message = obj.get("message")
        return cls(
            code if isinstance(code, int) else None,
            obj.get("data"),
            message if isinstance(message, str) else "",
        )

    def build(self) -> dict[str, Any]:
        return {"code": self.code, "data": self.data, "message": self.message}

    def serialize(self) -> str:
        return json.dumps(self.build())


def token_request(
    avatar_id: str,
    *,
    voice_id: str | None = None,
    context_id: str | None = None,
    language: str = "en",
    is_sandbox: bool = False,
) -> dict[str, Any]:
    """The FULL-mode, push-to-talk body of ``POST /v1/sessions/token`` (avatar mode)."""
    persona: dict[str, Any] = {"language": language}
    if voice_id:
        persona["voice_id"] = voice_id
    if context_id:
        persona["context_id"] = context_id
    return {
        "mode": "FULL",
        "avatar_id": avatar_id,
        "avatar_persona": persona,
        "interactivity_type": "PUSH_TO_TALK",
        "is_sandbox": is_sandbox,
    }


# --- the session REST bodies, inside the envelope's ``data`` -----------------------------------

TOKEN_PATH = "/v1/sessions/token"  # noqa: S105 - a path, not a secret
START_PATH = "/v1/sessions/start"
KEEP_ALIVE_PATH = "/v1/sessions/keep-alive"
STOP_PATH = "/v1/sessions/stop"
SUCCESS = 1000  # the envelope's success code, as the official SDK checks it
# Sandbox sessions (``is_sandbox``: no credits, about a minute long) take only this avatar ("Wayne").
SANDBOX_AVATAR_ID = "dd73ea75-1218-4ef3-92ce-606d5f7fbc0a"


class Resource(StrEnum):
    """What ``GET /v1/{kind}/{id}`` (``X-API-KEY``) answers for: an avatar, a voice, a context."""

    AVATAR = "avatars"
    VOICE = "voices"
    CONTEXT = "contexts"


def resource_path(kind: Resource, resource_id: str | None = None) -> str:
    """``/v1/{kind}/{id}`` (the id quoted); without an id, the route's template."""
    return f"/v1/{kind.value}/" + ("{resource_id}" if resource_id is None else quote(resource_id, safe=""))


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """The fields of an avatar, voice or context talkgate reads (inside the envelope's ``data``)."""

    id: str
    name: str

    def build(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}

    @classmethod
    def parse(cls, data: Any) -> ResourceInfo:
        found = _nonempty(data, "id")
        name = found.get("name")
        return cls(found["id"], name if isinstance(name, str) else "")


def _nonempty(data: Any, *keys: str) -> dict[str, Any]:
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) and data[k] for k in keys):
        raise ProtocolError(f"no {' and '.join(keys)}", code=ErrorCode.PROVIDER_ERROR)
    return data


@dataclass(frozen=True, slots=True)
class AvatarToken:
    """``POST /v1/sessions/token``'s data: the session and its bearer token."""

    session_id: str
    session_token: str

    def build(self) -> dict[str, Any]:
        return {"session_id": self.session_id, "session_token": self.session_token}

    @classmethod
    def parse(cls, data: Any) -> AvatarToken:
        obj = _nonempty(data, "session_id", "session_token")
        return cls(obj["session_id"], obj["session_token"])


# The session-start reply's mark of a talkgate simulator's stand-in room (see AvatarRoom).
STAND_IN_FIELD = "talkgate_stand_in"


@dataclass(frozen=True, slots=True)
class AvatarRoom:
    """``POST /v1/sessions/start``'s data: the LiveKit room the page joins. ``stand_in``: not in the
    published API; a talkgate simulator marks its room, a WebSocket carrying the room's JSON and no
    LiveKit, so that talkgate sends the page there whether or not it holds a key for it."""

    session_id: str
    livekit_url: str
    livekit_client_token: str
    max_session_duration: int | None
    stand_in: bool = False

    def build(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "session_id": self.session_id,
            "livekit_url": self.livekit_url,
            "livekit_client_token": self.livekit_client_token,
            "max_session_duration": self.max_session_duration,
        }
        if self.stand_in:
            data[STAND_IN_FIELD] = True
        return data

    @classmethod
    def parse(cls, data: Any, session_id: str) -> AvatarRoom:
        """``session_id``: the token's, for a reply that does not repeat it."""
        obj = _nonempty(data, "livekit_url", "livekit_client_token")
        duration = obj.get("max_session_duration")
        return cls(
            str(obj.get("session_id") or session_id),
            obj["livekit_url"],
            obj["livekit_client_token"],
            duration if isinstance(duration, int) and not isinstance(duration, bool) else None,
            obj.get(STAND_IN_FIELD) is True,
        )


@dataclass(frozen=True, slots=True)
class SessionRequest:
    """The body of keep-alive (no reason) and stop (with one of ``END_REASONS``)."""

    session_id: str
    reason: str | None = None

    def build(self) -> dict[str, Any]:
        body: dict[str, Any] = {"session_id": self.session_id}
        if self.reason is not None:
            body["reason"] = self.reason
        return body

    @classmethod
    def parse(cls, body: Any, *, default_reason: str | None = None) -> SessionRequest:
        obj = body if isinstance(body, dict) else {}
        sid = obj.get("session_id")
        if not isinstance(sid, str):
            raise ProtocolError("session_id is required")
        reason = obj.get("reason", default_reason)
        if reason is not None and reason not in END_REASONS:
            raise ProtocolError(f"unknown reason {reason!r}")
        return cls(sid, reason)


@dataclass(frozen=True, slots=True)
class DataPacket:
    """One data-channel message: a topic and a JSON object with an ``event_type``."""

    topic: str
    event_type: str
    payload: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | bytes) -> DataPacket:
        try:
            obj = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProtocolError(f"data packet is not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise ProtocolError("data packet is not an object")
        topic, data = obj.get("topic"), obj.get("data")
        if (
            not isinstance(topic, str)
            or not isinstance(data, dict)
            or not isinstance(data.get("event_type"), str)
        ):
            raise ProtocolError("data packet needs a topic and data with an event_type")
        return cls(topic, data["event_type"], {k: v for k, v in data.items() if k != "event_type"})

    def serialize(self) -> str:
        return json.dumps({"topic": self.topic, "data": {"event_type": self.event_type, **self.payload}})


# --- the push-to-talk command machine -------------------------------------------------------------
# The reference of the commands' order (the client package's avatar mode, which the page runs, follows
# it with its acknowledged push-to-talk machine: clients/js/src/avatar.ts). The mic is unmuted only
# between the provider's ``push_to_talk_started`` and the release, so no audio is ever sent outside a
# window; a missing acknowledgement times out back to a safe state.


class PttState(StrEnum):
    IDLE = "idle"
    STARTING = "starting"  # start sent, waiting for started
    CANCELLING = "cancelling"  # released before started came: stop as soon as it does
    TALKING = "talking"  # the window is open, the mic unmuted
    STOPPING = "stopping"  # stop sent, waiting for stopped
    ENDED = "ended"  # the session stopped: nothing more


class PttInput(StrEnum):
    PRESS = "press"
    RELEASE = "release"
    STARTED = "started"  # user.push_to_talk_started
    START_FAILED = "start_failed"  # user.push_to_talk_start_failed
    STOPPED = "stopped"  # user.push_to_talk_stopped
    STOP_FAILED = "stop_failed"  # user.push_to_talk_stop_failed
    TIMEOUT = "timeout"  # no acknowledgement in time
    SESSION_STOPPED = "session_stopped"  # session.stopped


class PttAction(StrEnum):
    SEND_START = "send_start"
    SEND_STOP = "send_stop"
    UNMUTE = "unmute"
    MUTE = "mute"
    ARM_TIMER = "arm_timer"  # an acknowledgement is due
    CANCEL_TIMER = "cancel_timer"
    REPORT = "report"  # tell the user (the step's ``error`` says what)


# (state, input) → (next state, actions, error for the user). A pair not listed changes nothing.
START_TIMED_OUT = "the avatar did not answer the start of push-to-talk in time"

PTT_TABLE: dict[tuple[PttState, PttInput], tuple[PttState, tuple[PttAction, ...], str | None]] = {
    (PttState.IDLE, PttInput.PRESS): (PttState.STARTING, (PttAction.SEND_START, PttAction.ARM_TIMER), None),
    (PttState.IDLE, PttInput.SESSION_STOPPED): (PttState.ENDED, (), None),
    (PttState.STARTING, PttInput.RELEASE): (PttState.CANCELLING, (), None),
    (PttState.STARTING, PttInput.STARTED): (
        PttState.TALKING,
        (PttAction.CANCEL_TIMER, PttAction.UNMUTE),
        None,
    ),
    (PttState.STARTING, PttInput.START_FAILED): (
        PttState.IDLE,
        (PttAction.CANCEL_TIMER, PttAction.REPORT),
        "the avatar could not start listening; try again",
    ),
    (PttState.STARTING, PttInput.TIMEOUT): (
        PttState.IDLE,
        (PttAction.SEND_STOP, PttAction.REPORT),
        START_TIMED_OUT,
    ),
    (PttState.STARTING, PttInput.SESSION_STOPPED): (PttState.ENDED, (PttAction.CANCEL_TIMER,), None),
    (PttState.CANCELLING, PttInput.PRESS): (PttState.STARTING, (), None),
    (PttState.CANCELLING, PttInput.STARTED): (
        PttState.STOPPING,
        (PttAction.CANCEL_TIMER, PttAction.SEND_STOP, PttAction.ARM_TIMER),
        None,
    ),
    (PttState.CANCELLING, PttInput.START_FAILED): (PttState.IDLE, (PttAction.CANCEL_TIMER,), None),
    (PttState.CANCELLING, PttInput.TIMEOUT): (
        PttState.IDLE,
        (PttAction.SEND_STOP, PttAction.REPORT),
        START_TIMED_OUT,
    ),
    (PttState.CANCELLING, PttInput.SESSION_STOPPED): (PttState.ENDED, (PttAction.CANCEL_TIMER,), None),
    (PttState.TALKING, PttInput.RELEASE): (
        PttState.STOPPING,
        (PttAction.MUTE, PttAction.SEND_STOP, PttAction.ARM_TIMER),
        None,
    ),
    (PttState.TALKING, PttInput.STOPPED): (PttState.IDLE, (PttAction.MUTE,), None),
    (PttState.TALKING, PttInput.SESSION_STOPPED): (PttState.ENDED, (PttAction.MUTE,), None),
    (PttState.STOPPING, PttInput.STOPPED): (PttState.IDLE, (PttAction.CANCEL_TIMER,), None),
    (PttState.STOPPING, PttInput.STOP_FAILED): (
        PttState.IDLE,
        (PttAction.CANCEL_TIMER, PttAction.REPORT),
        "the avatar could not stop listening cleanly",
    ),
    (PttState.STOPPING, PttInput.TIMEOUT): (
        PttState.IDLE,
        (PttAction.REPORT,),
        "the avatar did not answer the end of push-to-talk in time",
    ),
    (PttState.STOPPING, PttInput.SESSION_STOPPED): (PttState.ENDED, (PttAction.CANCEL_TIMER,), None),
}


@dataclass(frozen=True, slots=True)
class PttStep:
    state: PttState
    actions: tuple[PttAction, ...] = ()
    error: str | None = None


def ptt_step(state: PttState, event: PttInput) -> PttStep:
    """What the machine does on ``event`` in ``state``; unlisted pairs are ignored."""
    next_state, actions, error = PTT_TABLE.get((state, event), (state, (), None))
    return PttStep(next_state, actions, error)


def ptt_input(event_type: str) -> PttInput | None:
    """The machine's input for a data-channel event type (None: not a push-to-talk event)."""
    return EVENT_INPUTS.get(event_type)


EVENT_INPUTS: dict[str, PttInput] = {
    Event.PTT_STARTED: PttInput.STARTED,
    Event.PTT_START_FAILED: PttInput.START_FAILED,
    Event.PTT_STOPPED: PttInput.STOPPED,
    Event.PTT_STOP_FAILED: PttInput.STOP_FAILED,
    Event.SESSION_STOPPED: PttInput.SESSION_STOPPED,
}
