"""SQLAlchemy 2 tables. API schemas live in ``web``; every query lives in ``repository``."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps come back aware, in UTC, on every database (SQLite stores them without a zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


_RANDOM_CHARS = 16


def _base36(n: int, width: int = 0) -> str:
    digits = ""
    while n:
        n, r = divmod(n, 36)
        digits = _ALPHABET[r] + digits
    return digits.rjust(width, "0")


def cuid() -> str:
    """A cuid-like id: 'c', a base-36 millisecond timestamp, then 16 random base-36 characters
    (one draw from the system's CSPRNG for all 16: a start makes several ids, and a draw per
    character was a hundred reads of it)."""
    return (
        "c" + _base36(int(time.time() * 1000)) + _base36(secrets.randbelow(36**_RANDOM_CHARS), _RANDOM_CHARS)
    )


def utcnow() -> datetime:
    return datetime.now(UTC)


class SessionStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"


class CallStatus(StrEnum):
    ACTIVE = "active"
    ENDED = "ended"
    RECOVERED = "recovered"  # a recording left by a crash, repaired at start-up
    FAILED = "failed"


class AudioSource(StrEnum):
    MEDIA_STREAM = "media_stream"
    RELAY = "relay"
    CLIENT_CHUNKS = "client_chunks"
    PROVIDER = "provider"


class TranscriptSource(StrEnum):
    """Whose lines a call log's transcript holds: talkgate's own (the relay heard them, or the page
    posted them), or the provider's authoritative transcript from its post-call webhook."""

    TALKGATE = "talkgate"
    PROVIDER = "provider"


class MediaState(StrEnum):
    """The media-stream socket of a call: its URL was handed out, a socket holds it, it is done.
    A URL records once: only the claim ``issued`` → ``live`` lets a socket in."""

    ISSUED = "issued"
    LIVE = "live"
    FINALIZED = "finalized"


def _status_type(enum: type[StrEnum]) -> Enum:
    """A status column holding one of ``enum``'s values: a plain VARCHAR(16) in the database (the
    schema is unchanged, no CHECK constraint or native enum type to migrate), the enum member in
    Python, and a value outside the enum refused before it is written."""
    return Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=16,
        validate_strings=True,
        values_callable=lambda members: [member.value for member in members],
    )


@dataclass(frozen=True, slots=True)
class Rate:
    """A per-user limit on starts: at most ``max_starts`` calls (any status) started after
    ``since`` (an hour ago); 0: no limit."""

    max_starts: int
    since: datetime


@dataclass(frozen=True, slots=True)
class Cap:
    """A per-user limit on rows in progress, as the repository's starts take it: at most
    ``max_active`` started after ``since`` (older ones, never ended, stop counting); with
    ``rate``, also at most that many calls started in its window."""

    max_active: int
    since: datetime
    rate: Rate | None = None


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), default=utcnow, onupdate=utcnow, server_default=func.now()
    )


class User(TimestampMixin, Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)


class ConversationSession(TimestampMixin, Base):
    """A conversation session (the conversation routes' ``ConversationSession``), column for column."""

    __tablename__ = "conversation_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=cuid)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[SessionStatus] = mapped_column(
        _status_type(SessionStatus), default=SessionStatus.ACTIVE, server_default="active"
    )
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, server_default=func.now())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class CallLog(TimestampMixin, Base):
    __tablename__ = "call_logs"
    __table_args__ = (
        # The idle reaper's look for active calls nothing touched (calls.idle; migration 0004).
        Index("ix_call_logs_status_updated_at", "status", "updated_at"),
        # A start's count of the user's calls of the last hour (the hourly rate; migration 0004).
        Index("ix_call_logs_user_started_at", "user_id", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=cuid)
    conversation_id: Mapped[str] = mapped_column(String(128), unique=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    session_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    provider: Mapped[str] = mapped_column(String(32), default="elevenlabs")
    # The provider's id for this conversation, only ever as the provider told it to talkgate for
    # this user (never a client's text): the one join to provider-side resources.
    provider_conversation_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    agent_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    voice: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status: Mapped[CallStatus] = mapped_column(_status_type(CallStatus), default=CallStatus.ACTIVE)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    duration_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    audio_url: Mapped[str | None] = mapped_column(String(512), nullable=True)
    audio_source: Mapped[AudioSource | None] = mapped_column(_status_type(AudioSource), nullable=True)
    audio_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    audio_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    transcript: Mapped[list[Any]] = mapped_column(JSON, default=list)
    turns: Mapped[list[Any]] = mapped_column(JSON, default=list)
    end_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    media_state: Mapped[MediaState | None] = mapped_column(_status_type(MediaState), nullable=True)
    # What the provider reported after the call (its post_call_transcription webhook), bounded by
    # protocol.elevenlabs_rest: None until it comes. ``transcript_source`` None means talkgate's.
    transcript_source: Mapped[TranscriptSource | None] = mapped_column(
        _status_type(TranscriptSource), nullable=True
    )
    analysis: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    provider_duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    provider_cost: Mapped[float | None] = mapped_column(Float, nullable=True)


class WebhookDelivery(Base):
    """A provider webhook already applied, by the SHA-256 of its signed body: a replay is a no-op."""

    __tablename__ = "webhook_deliveries"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    provider_conversation_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
