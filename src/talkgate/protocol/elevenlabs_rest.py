"""ElevenLabs Agents' REST and webhook bodies: one definition for each, built and parsed here by
both talkgate's provider adapter and the simulator that stands in for the provider.

- ``GET /v1/convai/conversation/get-signed-url?agent_id=…[&include_conversation_id=true]``
  answers ``{signed_url[, conversation_id]}``;
- ``POST /v1/convai/conversation/start`` (the media-stream recording's start, not in the published
  API) takes ``{agent_id[, conversation_id][, media: {stream, websocket_url}]}`` and answers
  ``{conversation_id, signed_url, media_streaming}``;
- ``GET /v1/convai/conversations/{id}/audio`` answers the finished conversation's MP3;
- the post-call webhook posts ``{type, event_timestamp, data}``: ``post_call_audio`` carries the
  call's audio as base64 MP3, ``post_call_transcription`` its transcript.

Pure: no I/O. A body that does not fit raises ``FieldError`` (a ``ProtocolError``) naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

from talkgate.errors import ErrorCode, ProtocolError

SIGNED_URL_PATH = "/v1/convai/conversation/get-signed-url"
START_PATH = "/v1/convai/conversation/start"
MAX_CONVERSATION_ID = 128
SOCKET_SCHEMES = ("ws://", "wss://")

JSON: TypeAlias = dict[str, Any]


class FieldError(ProtocolError):
    """A body field that is missing or of the wrong kind; ``loc`` is its path in the body."""

    def __init__(self, loc: tuple[str, ...], message: str) -> None:
        super().__init__(f"{'.'.join(loc)}: {message}", code=ErrorCode.BAD_REQUEST)
        self.loc = loc
        self.reason = message


def recording_path(conversation_id: str) -> str:
    """Where the provider serves a finished conversation's MP3."""
    return f"/v1/convai/conversations/{conversation_id}/audio"


def _object(body: Any, what: str) -> JSON:
    if not isinstance(body, dict):
        raise FieldError((), f"{what} is not a JSON object")
    return body


def _socket_url(value: Any, loc: tuple[str, ...]) -> str:
    if not isinstance(value, str) or not value.startswith(SOCKET_SCHEMES):
        raise FieldError(loc, "must be a ws(s) URL")
    return value


def _dict(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def _conversation_id(value: Any) -> str | None:
    """A provider conversation id, or None when absent or not one (never trusted beyond that)."""
    return value if isinstance(value, str) and 0 < len(value) <= MAX_CONVERSATION_ID else None


@dataclass(frozen=True, slots=True)
class TranscriptTurn:
    role: str
    message: str

    def build(self) -> JSON:
        return {"role": self.role, "message": self.message}


def _transcript(value: Any) -> tuple[TranscriptTurn, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        TranscriptTurn(str(turn.get("role", "")), str(turn.get("message") or ""))
        for turn in value
        if isinstance(turn, dict)
    )


# --- get-signed-url ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedUrlRequest:
    agent_id: str
    include_conversation_id: bool = False

    def query(self) -> dict[str, str]:
        params = {"agent_id": self.agent_id}
        if self.include_conversation_id:
            params["include_conversation_id"] = "true"
        return params

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> SignedUrlRequest:
        agent_id = query.get("agent_id")
        if not agent_id:
            raise FieldError(("agent_id",), "field required")
        return cls(agent_id, query.get("include_conversation_id") == "true")


@dataclass(frozen=True, slots=True)
class SignedUrlReply:
    """The signed socket URL and, when asked for, the one conversation its signature opens."""

    signed_url: str
    conversation_id: str | None = None

    def build(self) -> JSON:
        body: JSON = {"signed_url": self.signed_url}
        if self.conversation_id is not None:
            body["conversation_id"] = self.conversation_id
        return body

    @classmethod
    def parse(cls, body: Any) -> SignedUrlReply:
        obj = _object(body, "the signed-URL reply")
        return cls(
            _socket_url(obj.get("signed_url"), ("signed_url",)), _conversation_id(obj.get("conversation_id"))
        )


@dataclass(frozen=True, slots=True)
class ConversationTokenReply:
    """``GET /v1/convai/conversation/token``: a token for the WebRTC path (the simulator offers it;
    talkgate does not use it)."""

    token: str

    def build(self) -> JSON:
        return {"token": self.token}

    @classmethod
    def parse(cls, body: Any) -> ConversationTokenReply:
        token = _object(body, "the token reply").get("token")
        if not isinstance(token, str) or not token:
            raise FieldError(("token",), "field required")
        return cls(token)


# --- conversation/start -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConversationStartRequest:
    """talkgate never proposes ``conversation_id`` (the provider picks it, so no client's text
    becomes a provider id); the simulator accepts one, as tests use it to name a conversation."""

    agent_id: str
    media_url: str | None = None
    conversation_id: str | None = None

    def build(self) -> JSON:
        body: JSON = {"agent_id": self.agent_id}
        if self.conversation_id is not None:
            body["conversation_id"] = self.conversation_id
        if self.media_url:
            body["media"] = {"stream": True, "websocket_url": self.media_url}
        return body

    @classmethod
    def parse(cls, body: Any) -> ConversationStartRequest:
        obj = _object(body, "the conversation-start body")
        agent_id = obj.get("agent_id")
        if not isinstance(agent_id, str) or not agent_id:
            raise FieldError(("agent_id",), "field required")
        cid = obj.get("conversation_id") or None
        if cid is not None and _conversation_id(cid) is None:
            raise FieldError(
                ("conversation_id",), f"must be a string of 1 to {MAX_CONVERSATION_ID} characters"
            )
        media = obj.get("media")
        media_url = None
        if isinstance(media, dict) and media.get("stream") is True:
            media_url = _socket_url(media.get("websocket_url"), ("media", "websocket_url"))
        return cls(agent_id, media_url, cid)


@dataclass(frozen=True, slots=True)
class ConversationStartReply:
    signed_url: str
    conversation_id: str | None
    media_streaming: bool

    def build(self) -> JSON:
        return {
            "conversation_id": self.conversation_id,
            "signed_url": self.signed_url,
            "media_streaming": self.media_streaming,
        }

    @classmethod
    def parse(cls, body: Any) -> ConversationStartReply:
        obj = _object(body, "the conversation-start reply")
        signed = obj.get("signed_url")
        if not isinstance(signed, str):
            raise FieldError(("signed_url",), "field required")
        # A provider that does not say streams as asked: the request asked for it.
        return cls(
            signed, _conversation_id(obj.get("conversation_id")), bool(obj.get("media_streaming", True))
        )


@dataclass(frozen=True, slots=True)
class ConversationDetails:
    """``GET /v1/convai/conversations/{id}``, the fields the simulator answers."""

    conversation_id: str
    agent_id: str
    done: bool
    transcript: tuple[TranscriptTurn, ...]
    start_time_unix_secs: int
    call_duration_secs: int

    def build(self) -> JSON:
        return {
            "conversation_id": self.conversation_id,
            "agent_id": self.agent_id,
            "status": "done" if self.done else "in-progress",
            "transcript": [turn.build() for turn in self.transcript],
            "metadata": {
                "start_time_unix_secs": self.start_time_unix_secs,
                "call_duration_secs": self.call_duration_secs,
            },
        }

    @classmethod
    def parse(cls, body: Any) -> ConversationDetails:
        obj = _object(body, "the conversation")
        meta = _dict(obj.get("metadata"))
        return cls(
            str(obj.get("conversation_id") or ""),
            str(obj.get("agent_id") or ""),
            obj.get("status") == "done",
            _transcript(obj.get("transcript")),
            int(meta.get("start_time_unix_secs") or 0),
            int(meta.get("call_duration_secs") or 0),
        )


# --- the post-call webhook --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostCallAudio:
    type: ClassVar[str] = "post_call_audio"
    agent_id: str
    conversation_id: str
    full_audio: str  # base64 MP3, left encoded: the route decodes it under its own byte cap
    event_timestamp: int

    def data(self) -> JSON:
        return {
            "agent_id": self.agent_id,
            "conversation_id": self.conversation_id,
            "full_audio": self.full_audio,
        }


@dataclass(frozen=True, slots=True)
class PostCallTranscription:
    type: ClassVar[str] = "post_call_transcription"
    agent_id: str
    conversation_id: str
    transcript: tuple[TranscriptTurn, ...]
    event_timestamp: int
    status: str = "done"

    def data(self) -> JSON:
        return {
            "agent_id": self.agent_id,
            "conversation_id": self.conversation_id,
            "status": self.status,
            "transcript": [turn.build() for turn in self.transcript],
        }


@dataclass(frozen=True, slots=True)
class OtherWebhook:
    """Any other event type (``call_initiation_failure``…): claimed, logged, not applied."""

    type: str
    conversation_id: str
    event_timestamp: int
    payload: JSON = field(default_factory=dict)

    def data(self) -> JSON:
        return {**self.payload, "conversation_id": self.conversation_id}


WebhookEvent: TypeAlias = PostCallAudio | PostCallTranscription | OtherWebhook


def build_webhook(event: WebhookEvent) -> bytes:
    """The webhook body as the provider posts it (the bytes its signature covers)."""
    return json.dumps(
        {"type": event.type, "event_timestamp": event.event_timestamp, "data": event.data()}
    ).encode()


def parse_webhook(body: bytes | str) -> WebhookEvent:
    """One verified webhook body; raises ProtocolError when it is not a provider event."""
    try:
        obj = json.loads(body)
        kind, data = str(obj["type"]), obj["data"]
        cid = str(data["conversation_id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ProtocolError("webhook body is not a provider event") from exc
    stamp = obj.get("event_timestamp")
    timestamp = stamp if isinstance(stamp, int) and not isinstance(stamp, bool) else 0
    agent_id = str(data.get("agent_id") or "")
    if kind == PostCallAudio.type and isinstance(data.get("full_audio"), str):
        return PostCallAudio(agent_id, cid, data["full_audio"], timestamp)
    if kind == PostCallTranscription.type:
        status = str(data.get("status") or "done")
        return PostCallTranscription(agent_id, cid, _transcript(data.get("transcript")), timestamp, status)
    return OtherWebhook(kind, cid, timestamp, {k: v for k, v in data.items() if k != "conversation_id"})
