"""The app ↔ talkgate Socket.IO contract (docs/protocol.md "Socket.IO"): event names, payload parsing and
the payloads talkgate emits. Names are those the push-to-talk relay's apps already use."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from talkgate.errors import AudioError, ErrorCode, ProtocolError, TalkgateError, error_fields
from talkgate.protocol import convai
from talkgate.protocol.audio import (
    PCM_16000,
    AudioFormat,
    Encoding,
    b64decode_audio,
    b64encode_audio,
    convert,
    validate_pcm16,
)

MAX_TEXT = 20_000
MAX_JSON_FIELD = 64 * 1024


class ClientEventName(StrEnum):
    CONVERSATION_START = "conversation_start"
    USER_AUDIO_START = "user-audio-start"
    SEND_AUDIO = "send_audio"
    USER_AUDIO_END = "user-audio-end"
    USER_ACTIVITY_SIGNAL = "user_activity_signal"
    CONVERSATION_MESSAGE = "conversation_message"
    CONVERSATION_END = "conversation_end"
    REAUTHENTICATE = "reauthenticate"  # {token}: a fresh token for the same user moves the socket's deadline


class ServerEventName(StrEnum):
    CONVERSATION_STARTED = "conversation_started"
    CONVERSATION_MESSAGE = "conversation_message"
    AGENT_AUDIO = "agent_audio"
    CONVERSATION_ENDED = "conversation_ended"
    CONVERSATION_ERROR = "conversation_error"
    # To every socket of the call's user, on any process (through Redis when configured): the call's
    # recording has been stored, whichever process or route stored it.
    RECORDING_READY = "recording_ready"


def user_room(user_id: str) -> str:
    """The Socket.IO room holding every socket of one user."""
    return f"user:{user_id}"


class InputCodec(StrEnum):
    """What an app may declare as ``inputFormat`` at ``conversation_start``."""

    PCM_16000 = "pcm_16000"
    WEBM_OPUS = "webm_opus"
    OGG_OPUS = "ogg_opus"
    AAC = "aac"
    MP4_AAC = "mp4_aac"

    @property
    def compressed(self) -> bool:
        return self is not InputCodec.PCM_16000


def _object(payload: Any, event: str) -> dict[str, Any]:
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise ProtocolError(f"{event} payload must be a JSON object", code=ErrorCode.BAD_REQUEST)
    return payload


def _optional_str(obj: dict[str, Any], key: str, limit: int = 256) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ProtocolError(f"{key} must be a non-empty string of at most {limit} characters")
    return value


def _optional_obj(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError(f"{key} must be a JSON object")
    if len(repr(value)) > MAX_JSON_FIELD:
        raise ProtocolError(f"{key} is too large")
    return value


@dataclass(frozen=True, slots=True)
class ConversationStart:
    voice: str | None = None
    agent_id: str | None = None
    input_codec: InputCodec = InputCodec.PCM_16000
    overrides: dict[str, Any] = field(default_factory=dict)
    dynamic_variables: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, payload: Any) -> ConversationStart:
        obj = _object(payload, ClientEventName.CONVERSATION_START)
        codec_name = obj.get("inputFormat", InputCodec.PCM_16000.value)
        try:
            codec = InputCodec(codec_name)
        except ValueError:
            raise ProtocolError(
                f"inputFormat {codec_name!r} is not one of {', '.join(c.value for c in InputCodec)}",
                code=ErrorCode.BAD_FORMAT,
            ) from None
        return cls(
            voice=_optional_str(obj, "voice", 32),
            agent_id=_optional_str(obj, "agentId", 128),
            input_codec=codec,
            overrides=_optional_obj(obj, "overrides"),
            dynamic_variables=_optional_obj(obj, "dynamicVariables"),
            metadata=_optional_obj(obj, "metadata"),
        )

    def initiation(self, user_id: str) -> convai.ConversationInitiationClientData:
        """What talkgate sends the provider first. The user id is the signed-in user's, at the top
        level and as the ``user_id`` dynamic variable when the app names one: talkgate's value wins,
        so that an agent reading ``{{user_id}}`` never sees another user's id an app put there."""
        variables = dict(self.dynamic_variables)
        for name, value in talkgate_variables(user_id).items():
            if name in variables:
                variables[name] = value
        return convai.ConversationInitiationClientData(
            conversation_config_override=self.overrides,
            dynamic_variables=variables,
            user_id=user_id,
        )


def talkgate_variables(user_id: str) -> dict[str, str]:
    """The dynamic variables whose values are talkgate's, whatever an app sends."""
    return {"user_id": user_id}


def parse_send_audio(payload: Any, max_bytes: int) -> tuple[bytes, str | None]:
    """``{audio: base64}`` or a binary attachment (bytes at top level or under ``audio``).

    Returns the bytes and, when the app sent base64, that same text (so the relay need not
    encode it again).
    """
    b64: str | None = None
    if isinstance(payload, bytes | bytearray):
        data = bytes(payload)
    else:
        obj = _object(payload, ClientEventName.SEND_AUDIO)
        audio = obj.get("audio")
        if isinstance(audio, bytes | bytearray):
            data = bytes(audio)
        elif isinstance(audio, str):
            data = b64decode_audio(audio, max_bytes=max_bytes)
            b64 = audio
        else:
            raise AudioError("send_audio needs audio: a base64 string or binary", code=ErrorCode.BAD_AUDIO)
    if len(data) > max_bytes:
        raise AudioError(
            f"audio chunk of {len(data)} bytes is over the limit of {max_bytes}",
            code=ErrorCode.CHUNK_TOO_LARGE,
        )
    if not data:
        raise AudioError("empty audio chunk is never forwarded", code=ErrorCode.EMPTY_AUDIO)
    return data, b64


@dataclass(frozen=True, slots=True)
class ChunkUpload:
    """``POST /api/calls/{id}/chunks`` as JSON: ``{audio: base64, format?}`` (PCM16 16 kHz unless said)."""

    format: AudioFormat
    audio: bytes

    def build(self) -> dict[str, str]:
        return {"audio": b64encode_audio(self.audio), "format": self.format.name}

    def pcm_16000(self) -> bytes:
        """The chunk as the recording keeps it."""
        return self.audio if self.format == PCM_16000 else convert(self.audio, self.format, PCM_16000)

    @classmethod
    def parse(cls, body: bytes | str, max_bytes: int) -> ChunkUpload:
        """Raises ProtocolError or AudioError; PCM is checked to be whole 16-bit samples."""
        try:
            obj = json.loads(body)
        except ValueError as exc:
            raise ProtocolError(f"body is not JSON: {exc}") from exc
        if not isinstance(obj, dict) or not isinstance(obj.get("audio"), str):
            raise ProtocolError("expected {audio: base64, format?}")
        fmt = AudioFormat.parse(str(obj.get("format") or "pcm_16000"))
        raw = b64decode_audio(obj["audio"], max_bytes=max_bytes)
        if fmt.encoding is Encoding.PCM:
            validate_pcm16(raw)
        return cls(fmt, raw)


def parse_conversation_message(payload: Any) -> convai.ClientEvent:
    """``{type: contextual_update|user_message, text}``; direct mode's older ``context`` is accepted too."""
    obj = _object(payload, ClientEventName.CONVERSATION_MESSAGE)
    kind = obj.get("type")
    text = obj.get("text")
    if text is None and kind == "contextual_update":
        text = obj.get("context")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        raise ProtocolError(f"conversation_message needs text (1 to {MAX_TEXT} characters)")
    if kind == "contextual_update":
        return convai.ContextualUpdate(text)
    if kind == "user_message":
        return convai.UserMessage(text)
    raise ProtocolError("conversation_message type must be contextual_update or user_message")


def ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}


def failed(error: TalkgateError) -> dict[str, Any]:
    """A refused acknowledgement: ``{ok: false, error: {code, message}}``, the HTTP error body's shape."""
    return {"ok": False, **error.body()}


def error_payload(error: TalkgateError, *, fatal: bool) -> dict[str, Any]:
    """The ``conversation_error`` event: the error's fields at the top level, and whether it ends the call."""
    return {**error_fields(error.code, error.message), "fatal": fatal}


def provider_message(event: convai.ServerEvent) -> dict[str, Any] | None:
    """A provider event as the app's ``conversation_message`` payload (None: not for the app)."""
    match event:
        case convai.UserTranscript() | convai.TentativeUserTranscript() | convai.AgentResponse():
            return {"type": event.type, "text": event.text, "eventId": event.event_id}
        case convai.AgentResponseCorrection():
            return {
                "type": event.type,
                "text": event.corrected,
                "original": event.original,
                "eventId": event.event_id,
            }
        case convai.Interruption():
            return {"type": event.type, "eventId": event.event_id}
        case convai.VadScore():
            return {"type": event.type, "score": event.score}
        case convai.ClientToolCall():
            return {
                "type": event.type,
                "toolName": event.tool_name,
                "toolCallId": event.tool_call_id,
                "parameters": event.parameters,
                "eventId": event.event_id,
            }
        case convai.UnknownServerEvent():
            return {"type": event.type, "payload": event.payload}
        case _:
            return None
