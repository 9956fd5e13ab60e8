"""Every query talkgate makes. Each method is one short transaction; every read and write of a
user's rows is scoped by ``user_id``, so another user's id is simply not found."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from talkgate.errors import ConflictError, NotFoundError
from talkgate.persistence.models import (
    AudioSource,
    CallLog,
    CallStatus,
    ConversationSession,
    SessionStatus,
    User,
    cuid,
    utcnow,
)

AUDIO_RANK: dict[str, int] = {
    AudioSource.PROVIDER: 1,
    AudioSource.CLIENT_CHUNKS: 2,
    AudioSource.RELAY: 3,
    AudioSource.MEDIA_STREAM: 4,
}


class Repository:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        # Users whose row this process has seen committed. Rows of users are never deleted, so a
        # conversation start of a known user skips the upsert: one statement fewer on the path
        # that a burst of apps connecting at once makes hot.
        self._known_users: set[str] = set()

    async def _ensure_user(self, db: AsyncSession, user_id: str) -> None:
        if user_id in self._known_users:
            return
        dialect = db.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        await db.execute(insert(User).values(id=user_id).on_conflict_do_nothing(index_elements=["id"]))

    # --- conversation sessions (seed 004) ---

    async def start_session(
        self, user_id: str, session_id: str | None = None, metadata: dict[str, Any] | None = None
    ) -> ConversationSession:
        async with self._sessions.begin() as db:
            await self._ensure_user(db, user_id)
            sid = session_id or cuid()
            existing = await db.scalar(
                select(ConversationSession).where(ConversationSession.session_id == sid)
            )
            if existing is not None:
                if existing.user_id != user_id:
                    raise ConflictError("that sessionId is taken")
                return existing
            row = ConversationSession(user_id=user_id, session_id=sid, metadata_=metadata)
            db.add(row)
            await db.flush()
            return row

    async def end_session(self, user_id: str, session_id: str) -> ConversationSession:
        async with self._sessions.begin() as db:
            row = await db.scalar(
                select(ConversationSession).where(
                    ConversationSession.session_id == session_id, ConversationSession.user_id == user_id
                )
            )
            if row is None:
                raise NotFoundError("no such session")
            if row.status != SessionStatus.ENDED:
                row.status = SessionStatus.ENDED
                row.ended_at = utcnow()
            return row

    # --- a relayed conversation: its session and call log together ---

    async def open_conversation(
        self,
        user_id: str,
        conversation_id: str,
        *,
        metadata: dict[str, Any] | None,
        audio_source: str | None = None,
        **fields: Any,
    ) -> tuple[ConversationSession, CallLog]:
        """A new ConversationSession and its call log in one transaction (the relay's start path,
        which a burst of apps connecting at once makes hot)."""
        while True:
            try:
                async with self._sessions.begin() as db:
                    session, call = await self._insert_conversation(
                        db, user_id, conversation_id, metadata, audio_source, fields
                    )
                break
            except IntegrityError:
                # Checked after the fact rather than by a query on every start: the unique
                # conversation_id, or a user row deleted since this process last saw it.
                async with self._sessions() as db:
                    taken = await db.scalar(
                        select(CallLog.user_id).where(CallLog.conversation_id == conversation_id)
                    )
                if taken is not None:
                    raise ConflictError("that conversationId is taken") from None
                if user_id not in self._known_users:
                    raise
                self._known_users.discard(user_id)  # insert the user again, once
        self._known_users.add(user_id)
        return session, call

    async def _insert_conversation(
        self,
        db: AsyncSession,
        user_id: str,
        conversation_id: str,
        metadata: dict[str, Any] | None,
        audio_source: str | None,
        fields: dict[str, Any],
    ) -> tuple[ConversationSession, CallLog]:
        await self._ensure_user(db, user_id)
        now = utcnow()
        session = ConversationSession(user_id=user_id, session_id=cuid(), metadata_=metadata, started_at=now)
        call = CallLog(
            user_id=user_id,
            conversation_id=conversation_id,
            session_id=session.session_id,
            started_at=now,
            audio_source=audio_source,
            transcript=[],
            turns=[],
            **fields,
        )
        db.add_all([session, call])
        await db.flush()
        return session, call

    async def close_conversation(
        self, user_id: str, session_id: str, conversation_id: str, **finish: Any
    ) -> None:
        """End the session and finish its call log in one transaction."""
        now = utcnow()
        values: dict[str, Any] = {"ended_at": now, "updated_at": now}
        values.update({k: v for k, v in finish.items() if v is not None})
        async with self._sessions.begin() as db:
            await db.execute(
                update(ConversationSession)
                .where(
                    ConversationSession.session_id == session_id,
                    ConversationSession.user_id == user_id,
                    ConversationSession.status != SessionStatus.ENDED,
                )
                .values(status=SessionStatus.ENDED, ended_at=now, updated_at=now)
            )
            await db.execute(
                update(CallLog).where(CallLog.conversation_id == conversation_id).values(**values)
            )

    # --- call logs ---

    async def create_call(self, user_id: str, conversation_id: str, **fields: Any) -> CallLog:
        async with self._sessions.begin() as db:
            await self._ensure_user(db, user_id)
            existing = await db.scalar(select(CallLog).where(CallLog.conversation_id == conversation_id))
            if existing is not None:
                if existing.user_id != user_id:
                    raise ConflictError("that conversationId is taken")
                return existing
            row = CallLog(user_id=user_id, conversation_id=conversation_id, transcript=[], turns=[], **fields)
            db.add(row)
            await db.flush()
            return row

    async def finish_call(
        self,
        conversation_id: str,
        *,
        ended_at: datetime | None = None,
        duration_ms: int | None = None,
        status: CallStatus = CallStatus.ENDED,
        **fields: Any,
    ) -> None:
        values: dict[str, Any] = {"status": status, "ended_at": ended_at or utcnow(), "updated_at": utcnow()}
        if duration_ms is not None:
            values["duration_ms"] = duration_ms
        values.update({k: v for k, v in fields.items() if v is not None})
        async with self._sessions.begin() as db:
            await db.execute(
                update(CallLog).where(CallLog.conversation_id == conversation_id).values(**values)
            )

    async def append_transcript(
        self, user_id: str, conversation_id: str, entries: list[dict[str, Any]], *, limit: int
    ) -> int:
        """Add lines to a user's call transcript (at most ``limit`` in all); returns its length."""
        async with self._sessions.begin() as db:
            row = await db.scalar(
                select(CallLog)
                .where(CallLog.conversation_id == conversation_id, CallLog.user_id == user_id)
                .with_for_update()
            )
            if row is None:
                raise NotFoundError("no such call")
            if len(row.transcript) + len(entries) > limit:
                raise ConflictError(f"a call keeps at most {limit} transcript lines")
            row.transcript = [*row.transcript, *entries]  # a new list: the JSON column sees the change
            row.updated_at = utcnow()
            return len(row.transcript)

    async def mark_recording(self, conversation_id: str, source: str | None) -> None:
        """A live recording of ``source`` has begun: other processes' call ends wait for it
        (None: the recording that was announced could not start)."""
        async with self._sessions.begin() as db:
            await db.execute(
                update(CallLog)
                .where(CallLog.conversation_id == conversation_id, CallLog.audio_key.is_(None))
                .values(audio_source=source, updated_at=utcnow())
            )

    async def set_call_audio(
        self, conversation_id: str, *, key: str, url: str, source: str, nbytes: int, status: str | None = None
    ) -> bool:
        """Attach a stored recording unless the call already has one from a better source
        (media stream > relay > the app's chunks > the provider's copy). Returns whether it did."""
        async with self._sessions.begin() as db:
            row = await db.scalar(
                select(CallLog).where(CallLog.conversation_id == conversation_id).with_for_update()
            )
            if row is None:
                return False
            if row.audio_key and AUDIO_RANK.get(row.audio_source or "", 0) > AUDIO_RANK[source]:
                return False
            row.audio_key, row.audio_url, row.audio_source, row.audio_bytes = key, url, source, nbytes
            row.updated_at = utcnow()
            if status:
                row.status = status
            return True

    async def call_by_conversation(self, conversation_id: str) -> CallLog | None:
        async with self._sessions() as db:
            return await db.scalar(select(CallLog).where(CallLog.conversation_id == conversation_id))

    async def get_call(self, user_id: str, conversation_id: str) -> CallLog:
        async with self._sessions() as db:
            row = await db.scalar(
                select(CallLog).where(CallLog.conversation_id == conversation_id, CallLog.user_id == user_id)
            )
        if row is None:
            raise NotFoundError("no such call")
        return row

    async def list_calls(
        self, user_id: str, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[CallLog], int]:
        async with self._sessions() as db:
            total = await db.scalar(
                select(func.count()).select_from(CallLog).where(CallLog.user_id == user_id)
            )
            rows = await db.scalars(
                select(CallLog)
                .where(CallLog.user_id == user_id)
                .order_by(CallLog.started_at.desc(), CallLog.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return list(rows), int(total or 0)

    async def call_by_id(self, call_id: str) -> CallLog | None:
        async with self._sessions() as db:
            return await db.get(CallLog, call_id)
