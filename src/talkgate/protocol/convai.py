"""ElevenLabs Agents conversation socket: typed events both ways, one parser, one serializer.

Sources: ElevenLabs' AsyncAPI (``packages/types/schemas/agent.asyncapi.yaml``) and the official
Python SDK (``conversational_ai/conversation.py``); see docs/protocol.md §2.
Server frames are ``{"type": T, "<T>_event": {...}}``; the user audio chunk is the one client
message without a ``type``. The signal-dialect messages (``user_message_begin``, ``end_user_audio``,
``{"text": " "}``) are modelled here too, marked as outside the published spec.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar, TypeAlias

from talkgate.errors import ErrorCode, ProtocolError

JSON: TypeAlias = dict[str, Any]


# The WebSocket subprotocol ElevenLabs' browser client asks for; the service answers with it, and a
# browser fails an opening whose answer names none of those it offered.
SUBPROTOCOL = "convai"
# The browser client's ``authorization`` option travels as a second subprotocol, ``bearer.<token>``.
BEARER_SUBPROTOCOL_PREFIX = "bearer."


def chosen_subprotocol(offered: list[str]) -> str | None:
    """The subprotocol the service answers an opening with: ``convai`` when it was offered."""
    return SUBPROTOCOL if SUBPROTOCOL in offered else None


def bearer_token(offered: list[str]) -> str | None:
    """The token of a ``bearer.<token>`` subprotocol, if the client offered one."""
    for name in offered:
        if name.startswith(BEARER_SUBPROTOCOL_PREFIX) and len(name) > len(BEARER_SUBPROTOCOL_PREFIX):
            return name[len(BEARER_SUBPROTOCOL_PREFIX) :]
    return None


class CloseCode(IntEnum):
    """Close codes of the conversation socket (AsyncAPI ``WebSocketCloseCode``)."""

    NORMAL = 1000  # agent ended the call, max duration
    OPERATIONAL = 1002  # timeouts, LLM/TTS/ASR failures
    POLICY = 1008  # invalid message, override error, auth
    INTERNAL = 1011


def _loads(raw: str | bytes) -> JSON:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"frame is not JSON: {exc}", code=ErrorCode.BAD_REQUEST) from exc
    if not isinstance(obj, dict):
        raise ProtocolError("frame is not a JSON object", code=ErrorCode.BAD_REQUEST)
    return obj


def _dumps(obj: JSON) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"{name} must be an integer", code=ErrorCode.BAD_PROVIDER_FRAME)
    return value


def _str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"{name} must be a string", code=ErrorCode.BAD_PROVIDER_FRAME)
    return value


def _body(obj: JSON, key: str) -> JSON:
    body = obj.get(key)
    if not isinstance(body, dict):
        raise ProtocolError(f"{obj.get('type')} frame lacks {key}", code=ErrorCode.BAD_PROVIDER_FRAME)
    return body


# === server → client ==========================================================================


@dataclass(frozen=True, slots=True)
class ConversationInitiationMetadata:
    type: ClassVar[str] = "conversation_initiation_metadata"
    conversation_id: str
    agent_output_audio_format: str = "pcm_16000"
    user_input_audio_format: str = "pcm_16000"

    def serialize(self) -> str:
        return _dumps(
            {
                "type": self.type,
                "conversation_initiation_metadata_event": {
                    "conversation_id": self.conversation_id,
                    "agent_output_audio_format": self.agent_output_audio_format,
                    "user_input_audio_format": self.user_input_audio_format,
                },
            }
        )


@dataclass(frozen=True, slots=True)
class Ping:
    type: ClassVar[str] = "ping"
    event_id: int
    ping_ms: int | None = None

    def serialize(self) -> str:
        return _dumps({"type": self.type, "ping_event": {"event_id": self.event_id, "ping_ms": self.ping_ms}})


@dataclass(frozen=True, slots=True)
class AgentAudio:
    """Agent speech; ``audio_base_64`` stays encoded so a relay can pass it on untouched."""

    type: ClassVar[str] = "audio"
    audio_base_64: str
    event_id: int

    def serialize(self) -> str:
        return _dumps(
            {
                "type": self.type,
                "audio_event": {"audio_base_64": self.audio_base_64, "event_id": self.event_id},
            }
        )


@dataclass(frozen=True, slots=True)
class UserTranscript:
    type: ClassVar[str] = "user_transcript"
    text: str
    event_id: int

    def serialize(self) -> str:
        return _dumps(
            {
                "type": self.type,
                "user_transcription_event": {"user_transcript": self.text, "event_id": self.event_id},
            }
        )


@dataclass(frozen=True, slots=True)
class TentativeUserTranscript:
    type: ClassVar[str] = "tentative_user_transcript"
    text: str
    event_id: int

    def serialize(self) -> str:
        return _dumps(
            {
                "type": self.type,
                "tentative_user_transcription_event": {
                    "user_transcript": self.text,
                    "event_id": self.event_id,
                },
            }
        )


@dataclass(frozen=True, slots=True)
class AgentResponse:
    type: ClassVar[str] = "agent_response"
    text: str
    event_id: int

    def serialize(self) -> str:
        return _dumps(
            {
                "type": self.type,
                "agent_response_event": {"agent_response": self.text, "event_id": self.event_id},
            }
        )


@dataclass(frozen=True, slots=True)
class AgentResponseCorrection:
    type: ClassVar[str] = "agent_response_correction"
    original: str
    corrected: str
    event_id: int

    def serialize(self) -> str:
        return _dumps(
            {
                "type": self.type,
                "agent_response_correction_event": {
                    "original_agent_response": self.original,
                    "corrected_agent_response": self.corrected,
                    "event_id": self.event_id,
                },
            }
        )


@dataclass(frozen=True, slots=True)
class Interruption:
    type: ClassVar[str] = "interruption"
    event_id: int
    reason: str | None = None

    def serialize(self) -> str:
        body: JSON = {"event_id": self.event_id}
        if self.reason is not None:
            body["reason"] = self.reason
        return _dumps({"type": self.type, "interruption_event": body})


@dataclass(frozen=True, slots=True)
class VadScore:
    type: ClassVar[str] = "vad_score"
    score: float

    def serialize(self) -> str:
        return _dumps({"type": self.type, "vad_score_event": {"vad_score": self.score}})


@dataclass(frozen=True, slots=True)
class ClientToolCall:
    type: ClassVar[str] = "client_tool_call"
    tool_name: str
    tool_call_id: str
    parameters: JSON
    event_id: int

    def serialize(self) -> str:
        return _dumps(
            {
                "type": self.type,
                "client_tool_call": {
                    "tool_name": self.tool_name,
                    "tool_call_id": self.tool_call_id,
                    "parameters": self.parameters,
                    "event_id": self.event_id,
                },
            }
        )


@dataclass(frozen=True, slots=True)
class ServerError:
    """``error`` frame, sent just before the server closes with an error code."""

    type: ClassVar[str] = "error"
    code: int
    error_type: str
    message: str

    def serialize(self) -> str:
        return _dumps(
            {
                "type": self.type,
                "error_event": {"code": self.code, "error_type": self.error_type, "message": self.message},
            }
        )


@dataclass(frozen=True, slots=True)
class UnknownServerEvent:
    """Any other frame type: relayed or logged, never fatal."""

    type: str
    payload: JSON = field(default_factory=dict)

    def serialize(self) -> str:
        return _dumps({"type": self.type, **self.payload})


ServerEvent: TypeAlias = (
    ConversationInitiationMetadata
    | Ping
    | AgentAudio
    | UserTranscript
    | TentativeUserTranscript
    | AgentResponse
    | AgentResponseCorrection
    | Interruption
    | VadScore
    | ClientToolCall
    | ServerError
    | UnknownServerEvent
)


def parse_server_event(raw: str | bytes) -> ServerEvent:
    """Parse one provider frame. Malformed known frames raise ProtocolError; unknown types don't."""
    obj = _loads(raw)
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("server frame has no type", code=ErrorCode.BAD_PROVIDER_FRAME)
    if kind == "audio":
        b = _body(obj, "audio_event")
        return AgentAudio(_str(b.get("audio_base_64"), "audio_base_64"), _int(b.get("event_id"), "event_id"))
    if kind == "ping":
        b = _body(obj, "ping_event")
        ping_ms = b.get("ping_ms")
        return Ping(
            _int(b.get("event_id"), "event_id"), None if ping_ms is None else _int(ping_ms, "ping_ms")
        )
    if kind == "conversation_initiation_metadata":
        b = _body(obj, "conversation_initiation_metadata_event")
        return ConversationInitiationMetadata(
            _str(b.get("conversation_id"), "conversation_id"),
            _str(b.get("agent_output_audio_format", "pcm_16000"), "agent_output_audio_format"),
            _str(b.get("user_input_audio_format", "pcm_16000"), "user_input_audio_format"),
        )
    if kind == "user_transcript":
        b = _body(obj, "user_transcription_event")
        return UserTranscript(
            _str(b.get("user_transcript"), "user_transcript"), _int(b.get("event_id", 0), "event_id")
        )
    if kind == "tentative_user_transcript":
        b = _body(obj, "tentative_user_transcription_event")
        return TentativeUserTranscript(
            _str(b.get("user_transcript"), "user_transcript"), _int(b.get("event_id", 0), "event_id")
        )
    if kind == "agent_response":
        b = _body(obj, "agent_response_event")
        return AgentResponse(
            _str(b.get("agent_response"), "agent_response"), _int(b.get("event_id", 0), "event_id")
        )
    if kind == "agent_response_correction":
        b = _body(obj, "agent_response_correction_event")
        return AgentResponseCorrection(
            _str(b.get("original_agent_response"), "original_agent_response"),
            _str(b.get("corrected_agent_response"), "corrected_agent_response"),
            _int(b.get("event_id", 0), "event_id"),
        )
    if kind == "interruption":
        b = _body(obj, "interruption_event")
        reason = b.get("reason")
        return Interruption(_int(b.get("event_id"), "event_id"), reason if isinstance(reason, str) else None)
    if kind == "vad_score":
        b = _body(obj, "vad_score_event")
        score = b.get("vad_score")
        if isinstance(score, bool) or not isinstance(score, int | float):
            raise ProtocolError("vad_score must be a number", code=ErrorCode.BAD_PROVIDER_FRAME)
        return VadScore(float(score))
    if kind == "client_tool_call":
        b = _body(obj, "client_tool_call")
        params = b.get("parameters", {})
        return ClientToolCall(
            _str(b.get("tool_name"), "tool_name"),
            _str(b.get("tool_call_id"), "tool_call_id"),
            params if isinstance(params, dict) else {},
            _int(b.get("event_id", 0), "event_id"),
        )
    if kind == "error":
        b = _body(obj, "error_event")
        code = b.get("code", 0)
        return ServerError(
            code if isinstance(code, int) else 0,
            str(b.get("error_type", "")),
            str(b.get("message", "")),
        )
    return UnknownServerEvent(kind, {k: v for k, v in obj.items() if k != "type"})


# === client → server ==========================================================================


@dataclass(frozen=True, slots=True)
class UserAudioChunk:
    type: ClassVar[str] = "user_audio_chunk"
    audio_base_64: str

    def serialize(self) -> str:
        # Hot path: the one message without a type; plain concatenation of a base64 string is safe.
        return '{"user_audio_chunk":"' + self.audio_base_64 + '"}'


@dataclass(frozen=True, slots=True)
class Pong:
    type: ClassVar[str] = "pong"
    event_id: int

    def serialize(self) -> str:
        return _dumps({"type": self.type, "event_id": self.event_id})


@dataclass(frozen=True, slots=True)
class ConversationInitiationClientData:
    type: ClassVar[str] = "conversation_initiation_client_data"
    conversation_config_override: JSON = field(default_factory=dict)
    dynamic_variables: JSON = field(default_factory=dict)
    custom_llm_extra_body: JSON = field(default_factory=dict)
    user_id: str | None = None

    def serialize(self) -> str:
        obj: JSON = {
            "type": self.type,
            "conversation_config_override": self.conversation_config_override,
            "dynamic_variables": self.dynamic_variables,
            "custom_llm_extra_body": self.custom_llm_extra_body,
        }
        if self.user_id is not None:
            obj["user_id"] = self.user_id
        return _dumps(obj)


@dataclass(frozen=True, slots=True)
class ContextualUpdate:
    type: ClassVar[str] = "contextual_update"
    text: str
    context_id: str | None = None  # a later update with the same id replaces this one

    def serialize(self) -> str:
        obj: JSON = {"type": self.type, "text": self.text}
        if self.context_id is not None:
            obj["context_id"] = self.context_id
        return _dumps(obj)


@dataclass(frozen=True, slots=True)
class UserMessage:
    type: ClassVar[str] = "user_message"
    text: str

    def serialize(self) -> str:
        return _dumps({"type": self.type, "text": self.text})


@dataclass(frozen=True, slots=True)
class UserActivity:
    type: ClassVar[str] = "user_activity"

    def serialize(self) -> str:
        return _dumps({"type": self.type})


@dataclass(frozen=True, slots=True)
class ClientToolResult:
    type: ClassVar[str] = "client_tool_result"
    tool_call_id: str
    result: str
    is_error: bool = False

    def serialize(self) -> str:
        return _dumps(
            {
                "type": self.type,
                "tool_call_id": self.tool_call_id,
                "result": self.result,
                "is_error": self.is_error,
            }
        )


FEEDBACK_SCORES = ("like", "dislike", None)


@dataclass(frozen=True, slots=True)
class Feedback:
    """The user's verdict on an agent response (the browser client's ``sendFeedback``)."""

    type: ClassVar[str] = "feedback"
    score: str | None  # "like", "dislike" or None (withdrawn)
    event_id: int

    def serialize(self) -> str:
        return _dumps({"type": self.type, "score": self.score, "event_id": self.event_id})


@dataclass(frozen=True, slots=True)
class McpToolApprovalResult:
    type: ClassVar[str] = "mcp_tool_approval_result"
    tool_call_id: str
    is_approved: bool

    def serialize(self) -> str:
        return _dumps({"type": self.type, "tool_call_id": self.tool_call_id, "is_approved": self.is_approved})


@dataclass(frozen=True, slots=True)
class MultimodalMessage:
    """Text and/or uploaded files as one user turn (``sendMultimodalMessage``)."""

    type: ClassVar[str] = "multimodal_message"
    text: str | None = None
    file_ids: tuple[str, ...] = ()

    def serialize(self) -> str:
        obj: JSON = {"type": self.type}
        if self.text is not None:
            obj["text"] = {"type": UserMessage.type, "text": self.text}
        files = [{"type": "file_input", "file_id": f} for f in self.file_ids]
        if files:
            obj["file"] = files[0]
            obj["files"] = files
        return _dumps(obj)


# --- the signal dialect: not in the published spec (docs/protocol.md "Push-to-talk dialects") ---


@dataclass(frozen=True, slots=True)
class UserMessageBegin:
    """The signal dialect's turn start. Not in ElevenLabs' published API."""

    type: ClassVar[str] = "user_message_begin"
    in_spec: ClassVar[bool] = False

    def serialize(self) -> str:
        return _dumps({"type": self.type})


@dataclass(frozen=True, slots=True)
class EndUserAudio:
    """The signal dialect's turn end. Not in ElevenLabs' published API."""

    type: ClassVar[str] = "end_user_audio"
    in_spec: ClassVar[bool] = False

    def serialize(self) -> str:
        return _dumps({"type": self.type})


@dataclass(frozen=True, slots=True)
class TextKeepAlive:
    """The signal dialect's ``{"text": " "}`` keep-alive (from the TTS streaming socket, not the
    agents one)."""

    type: ClassVar[str] = "text_keepalive"
    in_spec: ClassVar[bool] = False

    def serialize(self) -> str:
        return '{"text":" "}'


@dataclass(frozen=True, slots=True)
class UnknownClientEvent:
    type: str
    payload: JSON = field(default_factory=dict)

    def serialize(self) -> str:
        return _dumps({"type": self.type, **self.payload})


ClientEvent: TypeAlias = (
    UserAudioChunk
    | Pong
    | ConversationInitiationClientData
    | ContextualUpdate
    | UserMessage
    | UserActivity
    | ClientToolResult
    | Feedback
    | McpToolApprovalResult
    | MultimodalMessage
    | UserMessageBegin
    | EndUserAudio
    | TextKeepAlive
    | UnknownClientEvent
)

SEED_DIALECT_TYPES = frozenset({UserMessageBegin.type, EndUserAudio.type, TextKeepAlive.type})


def _dict(value: Any) -> JSON:
    return value if isinstance(value, dict) else {}


def parse_client_event(raw: str | bytes) -> ClientEvent:
    """Parse what a client sends the provider (used by the simulator and by tests).

    Raises ProtocolError with ``missing_fields``-style messages where the provider would close 1008.
    """
    obj = _loads(raw)
    if "user_audio_chunk" in obj and "type" not in obj:
        return UserAudioChunk(_str(obj["user_audio_chunk"], "user_audio_chunk"))
    kind = obj.get("type")
    if kind is None and set(obj) == {"text"}:
        return TextKeepAlive()
    if not isinstance(kind, str):
        raise ProtocolError("message has no type", code=ErrorCode.BAD_REQUEST)
    if kind == "pong":
        return Pong(_int(obj.get("event_id"), "event_id"))
    if kind == "conversation_initiation_client_data":
        uid = obj.get("user_id")
        return ConversationInitiationClientData(
            _dict(obj.get("conversation_config_override")),
            _dict(obj.get("dynamic_variables")),
            _dict(obj.get("custom_llm_extra_body")),
            uid if isinstance(uid, str) else None,
        )
    if kind == "contextual_update":
        text = obj.get("text")
        if not isinstance(text, str):
            raise ProtocolError("contextual_update requires text", code=ErrorCode.BAD_REQUEST)
        context_id = obj.get("context_id")
        return ContextualUpdate(text, context_id if isinstance(context_id, str) else None)
    if kind == "user_message":
        text = obj.get("text")
        return UserMessage(text if isinstance(text, str) else "")
    if kind == "user_activity":
        return UserActivity()
    if kind == "client_tool_result":
        return ClientToolResult(
            _str(obj.get("tool_call_id"), "tool_call_id"),
            str(obj.get("result", "")),
            bool(obj.get("is_error", False)),
        )
    if kind in _PUBLISHED_EXTRAS:
        return _PUBLISHED_EXTRAS[kind](obj)
    if kind == "user_message_begin":
        return UserMessageBegin()
    if kind == "end_user_audio":
        return EndUserAudio()
    return UnknownClientEvent(kind, {k: v for k, v in obj.items() if k != "type"})


def _feedback(obj: JSON) -> Feedback:
    score = obj.get("score")
    if score not in FEEDBACK_SCORES:
        raise ProtocolError("feedback score must be like, dislike or null", code=ErrorCode.BAD_REQUEST)
    return Feedback(score, _int(obj.get("event_id"), "event_id"))


def _mcp_approval(obj: JSON) -> McpToolApprovalResult:
    approved = obj.get("is_approved")
    if not isinstance(approved, bool):
        raise ProtocolError("is_approved must be true or false", code=ErrorCode.BAD_REQUEST)
    return McpToolApprovalResult(_str(obj.get("tool_call_id"), "tool_call_id"), approved)


def _multimodal(obj: JSON) -> MultimodalMessage:
    text = _dict(obj.get("text")).get("text")
    listed = obj.get("files")
    files: list[Any] = listed if isinstance(listed, list) else [obj.get("file")]
    ids = tuple(f["file_id"] for f in files if isinstance(f, dict) and isinstance(f.get("file_id"), str))
    return MultimodalMessage(text if isinstance(text, str) else None, ids)


# Published client messages the official clients send besides the conversation's own flow.
_PUBLISHED_EXTRAS: dict[str, Callable[[JSON], ClientEvent]] = {
    Feedback.type: _feedback,
    McpToolApprovalResult.type: _mcp_approval,
    MultimodalMessage.type: _multimodal,
}
