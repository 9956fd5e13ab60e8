"""What the JavaScript client package (and the web page, which runs on it) must agree on with the
Python side, rendered as the package's ``clients/js/src/wire.ts``: the readable message of every
error code, the Socket.IO event names, and the provider's event types with the key each one's body
travels under (direct mode reads provider frames itself).

``talkgate wire-js`` writes it (and the package README's error table); ``npm run page`` in
``clients/js`` then compiles it into the page's copy of the package (``static/js/client/wire.js``),
the one wire module the page imports. Tests fail when a committed file is stale. Pure.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from talkgate.errors import ErrorCode
from talkgate.protocol import convai, liveavatar
from talkgate.protocol.app_events import ClientEventName, InputCodec, ServerEventName
from talkgate.protocol.ends import EndReason

WIRE_TS = "clients/js/src/wire.ts"  # under the repository (absent from an installed wheel)
CLIENT_README = "clients/js/README.md"  # its error-code table, between these two lines
TABLE_START = "<!-- error codes: written by `talkgate wire-js` -->"
TABLE_END = "<!-- end of error codes -->"


class ClientErrorCode(StrEnum):
    """Codes only the client package (and so the page) raises, never sent by talkgate."""

    MICROPHONE = "microphone"  # the package's push-to-talk names the cause itself
    AVATAR_PTT = "avatar_ptt"
    CALL_END_FAILED = "call_end_failed"
    DISCONNECTED = "disconnected"  # the client package: the socket went away mid-request
    TIMEOUT = "timeout"  # the client package: talkgate did not acknowledge in time
    UNREACHABLE = "unreachable"  # the client package: no connection within its connect timeout


ERROR_MESSAGES: dict[str, str] = {
    ErrorCode.BAD_REQUEST: "talkgate did not understand a message from this page.",
    ErrorCode.BAD_AUDIO: "The microphone audio could not be read.",
    ErrorCode.BAD_BASE64: "An audio chunk was damaged on the way.",
    ErrorCode.EMPTY_AUDIO: "An empty audio chunk was dropped.",
    ErrorCode.CHUNK_TOO_LARGE: "An audio chunk was too large.",
    ErrorCode.BAD_FORMAT: "This audio format is not supported.",
    ErrorCode.NOT_RECORDING: "Audio arrived outside a turn; press to talk first.",
    ErrorCode.ALREADY_RECORDING: "A turn is already open.",
    ErrorCode.NO_CONVERSATION: "No conversation is running; connect first.",
    ErrorCode.CONVERSATION_ACTIVE: "A conversation is already running on this connection.",
    ErrorCode.UNKNOWN_VOICE: "No agent is configured for this voice.",
    ErrorCode.UNKNOWN_AGENT: "That agent is not one of this server's agents.",
    ErrorCode.SLOW_CONSUMER: "This page is not keeping up; some agent audio was skipped.",
    ErrorCode.METADATA_TOO_LARGE: "The conversation's metadata is too large.",
    ErrorCode.FIELD_TOO_LARGE: "A field of the conversation start is too large.",
    ErrorCode.TOO_MANY_ATTACHMENTS: "A message carried too many attachments; the connection was closed.",
    ErrorCode.MESSAGE_TOO_LARGE: "A message was too large; the connection was closed.",
    ErrorCode.TOO_MANY_SOCKETS: "Too many connections are open for this user; close one first.",
    ErrorCode.TOO_MANY_CONVERSATIONS: "Too many conversations are running for this user; end one first.",
    ErrorCode.TOO_MANY_SESSIONS: "Too many sessions are open for this user; end one first.",
    ErrorCode.TOO_MANY_CALLS: "This user has started too many calls in the last hour; try again later.",
    ErrorCode.CALL_ENDED: "This call has already ended.",
    ErrorCode.TOO_MUCH_AUDIO: "This call has more audio than the server keeps.",
    ErrorCode.PROVIDER_UNREACHABLE: "The voice provider cannot be reached right now.",
    ErrorCode.PROVIDER_AUTH: "The server's provider key was refused; tell the administrator.",
    ErrorCode.PROVIDER_ERROR: "The voice provider reported an error.",
    ErrorCode.PROVIDER_CLOSED: "The voice provider ended the conversation.",
    ErrorCode.PROVIDER_TIMEOUT: "The voice provider took too long to answer.",
    ErrorCode.PROVIDER_REJECTED_DIALECT: (
        "The provider refused a message; the server's dialect setting must change."
    ),
    ErrorCode.BAD_PROVIDER_FRAME: "The provider sent something talkgate could not read.",
    ErrorCode.UNAUTHORIZED: (
        "You are not signed in, or this server does not accept that sign-in. Sign in again."
    ),
    ErrorCode.FORBIDDEN: "This server does not allow that from here.",
    ErrorCode.TOKEN_EXPIRED: "Your sign-in has expired. Sign in again.",
    ErrorCode.TOKEN_BAD_SIGNATURE: (
        "That sign-in token was not signed by this server's identity provider (altered, or made for "
        "another server). Sign in again."
    ),
    ErrorCode.TOKEN_MALFORMED: (
        "That sign-in token is not a complete JWT (cut short or damaged). Sign in again."
    ),
    ErrorCode.WRONG_USER: "That sign-in is for another user.",
    ErrorCode.NOT_FOUND: "Not found.",
    ErrorCode.CONFLICT: "That conflicts with the current state.",
    ErrorCode.STORAGE_ERROR: (
        "This conversation cannot be recorded right now; it goes on without a recording."
    ),
    ErrorCode.DATABASE_UNAVAILABLE: "The call log could not be saved yet; talkgate keeps trying.",
    ErrorCode.REQUEST_TOO_LARGE: "The request was too large.",
    ErrorCode.WEBHOOK_BUSY: "The server is busy; try again shortly.",
    ErrorCode.REQUEST_TOO_SLOW: "The request arrived too slowly and was cut off; try again.",
    ErrorCode.METHOD_NOT_ALLOWED: "That address does not take this kind of request.",
    ErrorCode.SPOOL_FULL: "The server has no room for this upload right now; try again later.",
    ErrorCode.NOT_CONFIGURED: "This server does not offer that.",
    ErrorCode.INTERNAL: "talkgate hit an internal error.",
    ClientErrorCode.MICROPHONE: "The microphone could not be opened.",
    ClientErrorCode.AVATAR_PTT: "The avatar did not follow push-to-talk.",
    ClientErrorCode.CALL_END_FAILED: "The call could not be closed; its log may be incomplete.",
    ClientErrorCode.DISCONNECTED: "The connection to talkgate was lost.",
    ClientErrorCode.TIMEOUT: "talkgate did not answer in time.",
    ClientErrorCode.UNREACHABLE: (
        "talkgate could not be reached (its address, the network, or an origin it does not allow)."
    ),
}

# The ``type`` of each ``conversation_message`` talkgate sends (app_events.provider_message); any
# other provider type arrives with its frame under ``payload``.
MESSAGE_TYPES = (
    convai.UserTranscript.type,
    convai.TentativeUserTranscript.type,
    convai.AgentResponse.type,
    convai.AgentResponseCorrection.type,
    convai.Interruption.type,
    convai.VadScore.type,
    convai.ClientToolCall.type,
)


def _sample_server_events() -> list[convai.ServerEvent]:
    """One of each provider event the page may meet, to read where each body travels."""
    return [
        convai.ConversationInitiationMetadata("c"),
        convai.Ping(1),
        convai.AgentAudio("", 1),
        convai.UserTranscript("", 1),
        convai.TentativeUserTranscript("", 1),
        convai.AgentResponse("", 1),
        convai.AgentResponseCorrection("", "", 1),
        convai.Interruption(1),
        convai.VadScore(0.0),
        convai.ClientToolCall("", "", {}, 1),
        convai.ServerError(1008, "", ""),
    ]


def provider_event_bodies() -> dict[str, str]:
    """Each provider event type and the key its body travels under, read from the serializers."""
    bodies = {}
    for event in _sample_server_events():
        frame = json.loads(event.serialize())
        (key,) = (k for k in frame if k != "type")
        bodies[frame["type"]] = key
    return bodies


def provider_client_types() -> dict[str, str]:
    """The provider message types the direct mode's page sends, by class name."""
    kinds = (
        convai.ConversationInitiationClientData,
        convai.Pong,
        convai.UserAudioChunk,
        convai.ContextualUpdate,
        convai.UserMessage,
        convai.UserMessageBegin,
        convai.EndUserAudio,
    )
    return {kind.__name__: kind.type for kind in kinds}


AVATAR_ROOM_COMMENT = "The avatar room's topics, and the simulator's stand-in for its media tracks."


def avatar_room() -> dict[str, Any]:
    return {
        "CONTROL_TOPIC": liveavatar.CONTROL_TOPIC,
        "RESPONSE_TOPIC": liveavatar.RESPONSE_TOPIC,
        "TRACK_TOPIC": liveavatar.TRACK_TOPIC,
        "TRACK_AUDIO_FORMAT": liveavatar.TRACK_AUDIO_FORMAT,
        "TRACK_EVENTS": {e.name: e.value for e in liveavatar.TrackEvent},
    }


def _ts_const(name: str, value: Any, comment: str) -> str:
    text = json.dumps(value, indent=2, ensure_ascii=False)
    return f"/** {comment} */\nexport const {name} = {text} as const;\n"


def _ts_union(name: str, of: str, comment: str) -> str:
    return f"/** {comment} */\nexport type {name} = {of};\n"


def render_wire_ts() -> str:
    """The client package's ``wire.ts``, from the Python definitions, with types."""
    messages = {str(code): text for code, text in ERROR_MESSAGES.items()}
    parts = [
        "// GENERATED by `talkgate wire-js` from talkgate's Python definitions "
        "(protocol/page_wire.py): do not edit.\n",
        _ts_const(
            "ERROR_MESSAGES",
            messages,
            "A readable message for every error code talkgate or the client raises.",
        ),
        _ts_union(
            "ErrorCode", "keyof typeof ERROR_MESSAGES", "Every error code, talkgate's and the client's."
        ),
        _ts_const("CLIENT_ERRORS", {c.name: c.value for c in ClientErrorCode}, "Codes only clients raise."),
        _ts_const(
            "CLIENT_EVENTS", {e.name: e.value for e in ClientEventName}, "Socket.IO events an app emits."
        ),
        _ts_const(
            "SERVER_EVENTS", {e.name: e.value for e in ServerEventName}, "Socket.IO events talkgate emits."
        ),
        _ts_const("INPUT_FORMATS", [c.value for c in InputCodec], "What `inputFormat` may name."),
        _ts_union("InputFormat", "(typeof INPUT_FORMATS)[number]", "One input format."),
        _ts_const("MESSAGE_TYPES", list(MESSAGE_TYPES), "The typed `conversation_message` kinds."),
        _ts_union("MessageType", "(typeof MESSAGE_TYPES)[number]", "One typed message kind."),
        _ts_const("END_REASONS", [r.value for r in EndReason], "Why a conversation ended."),
        _ts_union("EndReason", "(typeof END_REASONS)[number]", "One end reason."),
        _ts_const(
            "PROVIDER_EVENT_BODIES",
            provider_event_bodies(),
            "The provider's event types (direct mode) and the key each body travels under.",
        ),
        _ts_const("PROVIDER_SENDS", provider_client_types(), "Provider message types sent in direct mode."),
        _ts_const("AVATAR_ROOM", avatar_room(), AVATAR_ROOM_COMMENT),
        _ts_const("AVATAR_COMMANDS", {c.name: c.value for c in liveavatar.Command}, "Avatar room commands."),
        _ts_const("AVATAR_EVENTS", {e.name: e.value for e in liveavatar.Event}, "Avatar room events."),
    ]
    return "\n".join(parts)


def render_error_table() -> str:
    """The client README's table of every error code and its message, with its marker lines."""
    rows = [f"| `{code}` | {text} |" for code, text in ERROR_MESSAGES.items()]
    return "\n".join([TABLE_START, "| code | readable message |", "|---|---|", *rows, TABLE_END])


def with_error_table(readme: str) -> str:
    """``readme`` with its error table (between the markers) replaced by the current one."""
    head, _, rest = readme.partition(TABLE_START)
    _, found, tail = rest.partition(TABLE_END)
    if not found:
        raise ValueError(f"{CLIENT_README} has no {TABLE_START} … {TABLE_END} section")
    return head + render_error_table() + tail
