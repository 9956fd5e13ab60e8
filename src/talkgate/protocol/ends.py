"""Why a call ended: the one vocabulary written to call logs and sent in ``conversation_ended``.

Every place that ends a call names its reason with a member of :class:`EndReason`; the value is the
string stored in ``call_logs.end_reason`` and shown to apps, so existing rows and clients keep reading
the same words.
"""

from __future__ import annotations

from enum import StrEnum


class EndReason(StrEnum):
    # Relay, direct and media-stream calls.
    CLIENT = "client"  # the app sent ``conversation_end``
    AGENT = "agent"  # the provider closed normally
    ERROR = "error"  # the provider or the relay failed
    DISCONNECTED = "disconnected"  # the app's socket went away
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 - an end reason, not a secret
    SERVER_SHUTDOWN = "server_shutdown"
    # Written by the call-end fallback chain, crash repair and abandoned starts.
    CALL_END = "call_end"
    SERVER_CRASH = "server_crash"
    CANCELLED = "cancelled"
    # A direct or avatar call that showed no sign of life for TALKGATE_CALL_IDLE_TIMEOUT.
    ABANDONED = "abandoned"
    # An avatar call whose room never connected (the page's stop says so).
    NEVER_CONNECTED = "never_connected"
    # Avatar calls: LiveAvatar's stop reasons, lower-cased as stored.
    UNKNOWN = "unknown"
    USER_DISCONNECTED = "user_disconnected"
    SERVER_ERROR = "server_error"
    IDLE_TIMEOUT = "idle_timeout"
    NO_CREDITS = "no_credits"
    USER_CLOSED = "user_closed"
    AVATAR_DELETED = "avatar_deleted"
    MAX_DURATION_REACHED = "max_duration_reached"
    ZOMBIE_SESSION_REAP = "zombie_session_reap"
    AGENT_HANG_UP = "agent_hang_up"

    @classmethod
    def from_avatar(cls, provider_reason: str) -> EndReason:
        """LiveAvatar's upper-case stop reason as stored (``USER_CLOSED`` → ``user_closed``)."""
        return cls(provider_reason.lower())
