"""The one exception tree of talkgate.

Every error a peer can see carries a stable ``code`` (what an app switches on) and a human
``message``. Foreign exceptions (httpx, websockets, SQLAlchemy, OS errors) are translated at the
edge that meets them, with ``raise ... from exc``.

    TalkgateError
    ├── ProtocolError        bad input from a peer: app, provider frame, media socket
    │   ├── AudioError       bad_audio, empty_audio, bad_base64, chunk_too_large, bad_format
    │   └── TurnError        not_recording, already_recording (push-to-talk state machine)
    ├── ProviderError        the provider failed: unreachable, refused the key, closed, timed out
    ├── AuthError            missing, expired or forged credentials
    ├── NotFoundError        unknown id, or another user's id (indistinguishable on purpose)
    ├── ConflictError        an operation that the current state forbids
    └── StorageError         a recording could not be written or read

This module is a leaf: it imports nothing of talkgate, so the pure ``protocol`` package may use it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Codes an app may see in ``conversation_error`` events and error bodies."""

    # app input
    BAD_REQUEST = "bad_request"
    BAD_AUDIO = "bad_audio"
    BAD_BASE64 = "bad_base64"
    EMPTY_AUDIO = "empty_audio"
    CHUNK_TOO_LARGE = "chunk_too_large"
    BAD_FORMAT = "bad_format"
    NOT_RECORDING = "not_recording"
    ALREADY_RECORDING = "already_recording"
    NO_CONVERSATION = "no_conversation"
    CONVERSATION_ACTIVE = "conversation_active"
    UNKNOWN_VOICE = "unknown_voice"
    UNKNOWN_AGENT = "unknown_agent"
    SLOW_CONSUMER = "slow_consumer"
    METADATA_TOO_LARGE = "metadata_too_large"
    FIELD_TOO_LARGE = "field_too_large"  # conversation_start: metadata etc. over the bytes or depth cap
    TOO_MANY_ATTACHMENTS = "too_many_attachments"  # fatal: the socket is closed
    MESSAGE_TOO_LARGE = "message_too_large"  # a packet with its attachments; fatal: the socket is closed
    TOO_MANY_SOCKETS = "too_many_sockets"
    TOO_MANY_CONVERSATIONS = "too_many_conversations"
    TOO_MANY_SESSIONS = "too_many_sessions"
    TOO_MANY_CALLS = "too_many_calls"  # calls started by one user in the last hour
    CALL_ENDED = "call_ended"
    TOO_MUCH_AUDIO = "too_much_audio"
    # provider side
    PROVIDER_UNREACHABLE = "provider_unreachable"
    PROVIDER_AUTH = "provider_auth"
    PROVIDER_ERROR = "provider_error"
    PROVIDER_CLOSED = "provider_closed"
    PROVIDER_TIMEOUT = "provider_timeout"
    PROVIDER_REJECTED_DIALECT = "provider_rejected_dialect"
    BAD_PROVIDER_FRAME = "bad_provider_frame"
    # platform
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"  # /metrics from a remote client without TALKGATE_METRICS_TOKEN
    # A refused token says what failed (a sign-in page tells a user which): an expired token, or a
    # socket whose token ran out (reauthenticate before); a signature this server's key did not make;
    # not a JWT at all. A missing token, and claims that do not fit (audience...), are unauthorized.
    TOKEN_EXPIRED = "token_expired"  # noqa: S105
    TOKEN_BAD_SIGNATURE = "token_bad_signature"  # noqa: S105
    TOKEN_MALFORMED = "token_malformed"  # noqa: S105
    WRONG_USER = "wrong_user"  # reauthenticate with another user's token
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"  # a route that exists, with another method
    CONFLICT = "conflict"
    STORAGE_ERROR = "storage_error"
    DATABASE_UNAVAILABLE = "database_unavailable"
    REQUEST_TOO_LARGE = "request_too_large"
    REQUEST_TOO_SLOW = "request_too_slow"  # a body that arrives too slowly (the webhook's minimum rate)
    WEBHOOK_BUSY = "webhook_busy"
    SPOOL_FULL = "spool_full"
    NOT_CONFIGURED = "not_configured"
    INTERNAL = "internal"


class TalkgateError(Exception):
    """Base of every talkgate error; ``code`` is stable, ``message`` is for people."""

    default_code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code or self.default_code
        self.message = message

    def as_dict(self) -> dict[str, str]:
        return error_fields(self.code, self.message)

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message)


class ProtocolError(TalkgateError):
    default_code = ErrorCode.BAD_REQUEST


class AudioError(ProtocolError):
    default_code = ErrorCode.BAD_AUDIO


class TurnError(ProtocolError):
    default_code = ErrorCode.NOT_RECORDING


class ProviderError(TalkgateError):
    default_code = ErrorCode.PROVIDER_ERROR


class AuthError(TalkgateError):
    default_code = ErrorCode.UNAUTHORIZED


class NotFoundError(TalkgateError):
    default_code = ErrorCode.NOT_FOUND


class ConflictError(TalkgateError):
    default_code = ErrorCode.CONFLICT


class StorageError(TalkgateError):
    default_code = ErrorCode.STORAGE_ERROR


class DatabaseUnavailable(TalkgateError):
    default_code = ErrorCode.DATABASE_UNAVAILABLE


def error_fields(code: ErrorCode, message: str) -> dict[str, str]:
    """``{code, message}``: what an acknowledgement, an error event and an error body all carry."""
    return {"code": code.value, "message": message}


def error_body(code: ErrorCode, message: str) -> dict[str, Any]:
    """The one JSON body of every HTTP error talkgate answers: ``{"error": {code, message}}``."""
    return {"error": error_fields(code, message)}
