"""LiveAvatar (seed 003): the REST envelope, session-token body, and the data-channel vocabulary.

REST responses are ``{code, data, message}``; trust the HTTP status and ``data``, not ``code``
(the public spec and the official SDK disagree on the success code; research/liveavatar.md §1.1).
Realtime commands travel on topic ``agent-control``, events on ``agent-response``, as JSON objects
with an ``event_type``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from talkgate.errors import ErrorCode, ProtocolError

CONTROL_TOPIC = "agent-control"
RESPONSE_TOPIC = "agent-response"


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

    def serialize(self) -> str:
        return json.dumps({"code": self.code, "data": self.data, "message": self.message})


def token_request(
    avatar_id: str,
    *,
    voice_id: str | None = None,
    context_id: str | None = None,
    language: str = "en",
    is_sandbox: bool = False,
) -> dict[str, Any]:
    """The FULL-mode, push-to-talk body of ``POST /v1/sessions/token`` (seed 003)."""
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
