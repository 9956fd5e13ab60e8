"""Every query talkgate makes. Each method is one short transaction; every read and write of a
user's rows is scoped by ``user_id``, so another user's id is simply not found."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from talkgate.errors import ConflictError, ErrorCode, NotFoundError
from talkgate.persistence.models import (
    AudioSource,
    CallLog,
    CallStatus,
    ConversationSession,
    MediaState,
    SessionStatus,
    User,
    WebhookDelivery,
    cuid,
    utcnow,
)
from talkgate.protocol.ends import EndReason

# Signed webhooks older than 30 minutes are refused (protocol.signing), so a delivery remembered
# for longer than that can never come back as an accepted replay.
WEBHOOK_MEMORY = timedelta(hours=1)

AUDIO_RANK: dict[str, int] = {
    AudioSource.PROVIDER: 1,
    AudioSource.CLIENT_CHUNKS: 2,
    AudioSource.RELAY: 3,
    AudioSource.MEDIA_STREAM: 4,
}


log = logging.getLogger("talkgate.persistence")

MAX_START_BATCH = 250  # conversation starts per transaction: bounds one transaction's time

Opened = tuple[ConversationSession, CallLog]


@dataclass(frozen=True, slots=True)
class AudioSwap:
    """What ``set_call_audio`` did: whether the new recording is the call's now, and the stored
    object no call log names any more (to delete), if any. Truthy when attached."""

    attached: bool
    unused_key: str | None

    def __bool__(self) -> bool:
        return self.attached


@dataclass(slots=True)
class _Start:
    user_id: str
    conversation_id: str
    metadata: dict[str, Any] | None
    audio_source: str | None
    fields: dict[str, Any]
    done: asyncio.Future[Opened] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Repository:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        # Users whose row this process has seen committed. Rows of users are never deleted, so a
        # conversation start of a known user skips the upsert: one statement fewer on the path
        # that a burst of apps connecting at once makes hot.
        self._known_users: set[str] = set()
        self._starts: list[_Start] = []  # conversation starts waiting for the next transaction
        self._committer: asyncio.Future[None] | None = None
        self._cleanups: set[asyncio.Future[None]] = set()

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

    async def _hold_user(self, db: AsyncSession, user_id: str) -> None:
        """Serialise one user's capped starts until the transaction ends: a write to the user's
        row is a row lock on PostgreSQL and the database's write lock on SQLite, so two requests
        cannot both count N - 1 and both start the Nth (in any process)."""
        await self._ensure_user(db, user_id)
        await db.execute(update(User).where(User.id == user_id).values(updated_at=utcnow()))

    async def start_session_capped(
        self,
        user_id: str,
        session_id: str | None,
        metadata: dict[str, Any] | None,
        *,
        max_active: int,
        since: datetime,
    ) -> ConversationSession:
        """``start_session``, refused (``too_many_sessions``) when the user already has
        ``max_active`` active sessions started after ``since``."""
        async with self._sessions.begin() as db:
            await self._hold_user(db, user_id)
            sid = session_id or cuid()
            existing = await db.scalar(
                select(ConversationSession).where(ConversationSession.session_id == sid)
            )
            if existing is not None:
                if existing.user_id != user_id:
                    raise ConflictError("that sessionId is taken")
                return existing
            active = await db.scalar(
                select(func.count())
                .select_from(ConversationSession)
                .where(
                    ConversationSession.user_id == user_id,
                    ConversationSession.status == SessionStatus.ACTIVE,
                    ConversationSession.started_at >= since,
                )
            )
            if (active or 0) >= max_active:
                raise ConflictError(
                    f"you have {max_active} active sessions; end one first "
                    "(TALKGATE_MAX_ACTIVE_SESSIONS_PER_USER)",
                    code=ErrorCode.TOO_MANY_SESSIONS,
                )
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
    ) -> Opened:
        """A new ConversationSession and its call log, committed together.

        This is the relay's start path, which a burst of apps connecting at once makes hot:
        starts that arrive while a transaction is under way are committed together in the next
        one (group commit). One start took about 2 ms of the process (SQLAlchemy's unit of work,
        the driver's round trips), and on SQLite's one connection they queued one after another:
        500 simultaneous starts waited 1.9 s at the median for their turn (``bench/relay.py``)."""
        start = _Start(user_id, conversation_id, metadata, audio_source, fields)
        self._starts.append(start)
        if self._committer is None:
            self._committer = asyncio.ensure_future(self._commit_starts())
        try:
            # Shielded: a caller that stops waiting does not cancel the others' transaction.
            return await asyncio.shield(start.done)
        except asyncio.CancelledError:
            start.done.add_done_callback(self._abandoned)
            raise

    def _abandoned(self, done: asyncio.Future[Opened]) -> None:
        """A start committed after its caller gave up: nobody will end it, so end it now, rather
        than leave a call log "active" for ever."""
        if done.cancelled() or done.exception() is not None:
            return
        session, call = done.result()
        task = asyncio.ensure_future(self._end_abandoned(session, call))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _end_abandoned(self, session: ConversationSession, call: CallLog) -> None:
        try:
            await self.close_conversation(
                session.user_id,
                session.session_id,
                call.conversation_id,
                duration_ms=0,
                status=CallStatus.FAILED,
                end_reason=EndReason.CANCELLED,
            )
        except Exception:
            log.exception("call log %s: could not end an abandoned start", call.conversation_id)

    async def _commit_starts(self) -> None:
        batch: list[_Start] = []
        try:
            while self._starts:
                batch, self._starts = self._starts[:MAX_START_BATCH], self._starts[MAX_START_BATCH:]
                await self._commit_batch(batch)
        finally:
            self._committer = None
            # Cancelled (the server stopping): no waiting start may hang on a transaction that is gone.
            left, self._starts = batch + self._starts, []
            for start in left:
                start.done.cancel()

    async def _commit_batch(self, batch: list[_Start]) -> None:
        if len(batch) > 1:
            try:
                async with self._sessions.begin() as db:
                    rows = await self._insert_conversations(db, batch)
            except Exception as exc:  # each start is tried alone, and fails alone
                log.debug("%d conversation starts failed together (%s): trying each alone", len(batch), exc)
            else:
                for start, row in zip(batch, rows, strict=True):
                    self._known_users.add(start.user_id)
                    start.done.set_result(row)
                return
        for start in batch:
            try:
                start.done.set_result(await self._open_one(start))
            except Exception as exc:
                start.done.set_exception(exc)

    async def _open_one(self, start: _Start) -> Opened:
        while True:
            try:
                async with self._sessions.begin() as db:
                    (row,) = await self._insert_conversations(db, [start])
                break
            except IntegrityError:
                # Checked after the fact rather than by a query on every start: the unique
                # conversation_id, or a user row deleted since this process last saw it.
                async with self._sessions() as db:
                    taken = await db.scalar(
                        select(CallLog.user_id).where(CallLog.conversation_id == start.conversation_id)
                    )
                if taken is not None:
                    raise ConflictError("that conversationId is taken") from None
                if start.user_id not in self._known_users:
                    raise
                self._known_users.discard(start.user_id)  # insert the user again, once
        self._known_users.add(start.user_id)
        return row

    async def _insert_conversations(self, db: AsyncSession, batch: list[_Start]) -> list[Opened]:
        for user_id in dict.fromkeys(start.user_id for start in batch):
            await self._ensure_user(db, user_id)
        now = utcnow()
        rows = []
        for start in batch:
            session = ConversationSession(
                user_id=start.user_id, session_id=cuid(), metadata_=start.metadata, started_at=now
            )
            call = CallLog(
                user_id=start.user_id,
                conversation_id=start.conversation_id,
                session_id=session.session_id,
                started_at=now,
                audio_source=start.audio_source,
                transcript=[],
                turns=[],
                **start.fields,
            )
            rows.append((session, call))
        db.add_all([row for pair in rows for row in pair])
        await db.flush()  # the unit of work inserts each table's rows in one multi-row statement
        return rows

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

    async def create_call_capped(
        self, user_id: str, conversation_id: str, *, max_active: int, since: datetime, **fields: Any
    ) -> CallLog:
        """``create_call``, refused (``too_many_conversations``) when the user already has
        ``max_active`` active calls started after ``since``; the same call again is not refused."""
        async with self._sessions.begin() as db:
            await self._hold_user(db, user_id)
            existing = await db.scalar(select(CallLog).where(CallLog.conversation_id == conversation_id))
            if existing is not None:
                if existing.user_id != user_id:
                    raise ConflictError("that conversationId is taken")
                return existing
            active = await db.scalar(
                select(func.count())
                .select_from(CallLog)
                .where(
                    CallLog.user_id == user_id,
                    CallLog.status == CallStatus.ACTIVE,
                    CallLog.started_at >= since,
                )
            )
            if (active or 0) >= max_active:
                raise ConflictError(
                    f"you have {max_active} conversations in progress; end one first "
                    "(TALKGATE_MAX_ACTIVE_CALLS_PER_USER)",
                    code=ErrorCode.TOO_MANY_CONVERSATIONS,
                )
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
    ) -> AudioSwap:
        """Attach the object stored under ``key`` unless the call already has a recording from as
        good a source (media stream > relay > the app's chunks > the provider's copy). Deciding
        and switching are one transaction holding the call's row, so of two racing writers one
        wins and the other learns it lost; the result names the object nothing refers to now
        (the replaced one, or ``key`` itself if refused), for the caller to delete.

        Equal rank keeps what is attached: a second recording of the same source is a replay (a
        webhook, a provider fetch after the webhook) or a repair of a file whose finished copy
        already arrived, and the first one is what the user was told about."""
        async with self._sessions.begin() as db:
            # A write first: it takes the row's lock on PostgreSQL and the database's write lock
            # on SQLite (whose SELECT … FOR UPDATE is a plain SELECT) before the row is read.
            locked = await db.execute(
                update(CallLog)
                .where(CallLog.conversation_id == conversation_id)
                .values(updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            row = await db.scalar(
                select(CallLog)
                .where(CallLog.conversation_id == conversation_id)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
            if not locked.rowcount or row is None:  # type: ignore[attr-defined]
                return AudioSwap(False, key)
            if row.audio_key == key:  # this very object, linked by a relink racing its finish
                return AudioSwap(True, None)
            if row.audio_key and AUDIO_RANK.get(row.audio_source or "", 0) >= AUDIO_RANK[source]:
                return AudioSwap(False, key)
            replaced = row.audio_key
            row.audio_key, row.audio_url, row.audio_source, row.audio_bytes = key, url, source, nbytes
            row.updated_at = utcnow()
            if status:
                row.status = status
            return AudioSwap(True, replaced)

    # --- who records a call, and whose provider conversation it is ---

    async def own_provider_conversation(
        self, user_id: str, conversation_id: str, provider_conversation_id: str
    ) -> bool:
        """The provider named the conversation it will hold for this user's call (a signed URL
        good for that one conversation): remember its id, once, while the call is active."""
        async with self._sessions.begin() as db:
            done = await db.execute(
                update(CallLog)
                .where(
                    CallLog.conversation_id == conversation_id,
                    CallLog.user_id == user_id,
                    CallLog.status == CallStatus.ACTIVE,
                    CallLog.provider_conversation_id.is_(None),
                )
                .values(provider_conversation_id=provider_conversation_id, updated_at=utcnow())
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    async def issue_media(
        self, user_id: str, conversation_id: str, provider_conversation_id: str | None
    ) -> bool:
        """A media-stream URL was handed out for this call and the provider started its
        conversation: remember the provider's id. Only before any socket claimed the URL."""
        async with self._sessions.begin() as db:
            done = await db.execute(
                update(CallLog)
                .where(
                    CallLog.conversation_id == conversation_id,
                    CallLog.user_id == user_id,
                    CallLog.status == CallStatus.ACTIVE,
                    (CallLog.media_state.is_(None)) | (CallLog.media_state == MediaState.ISSUED),
                )
                .values(
                    media_state=MediaState.ISSUED,
                    provider_conversation_id=provider_conversation_id,
                    updated_at=utcnow(),
                )
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    async def claim_media(self, conversation_id: str) -> bool:
        """The one live media socket of a call, across processes: only an active call whose URL
        was issued and not yet used."""
        async with self._sessions.begin() as db:
            done = await db.execute(
                update(CallLog)
                .where(
                    CallLog.conversation_id == conversation_id,
                    CallLog.status == CallStatus.ACTIVE,
                    CallLog.media_state == MediaState.ISSUED,
                )
                .values(media_state=MediaState.LIVE, updated_at=utcnow())
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    async def finalize_media(self, conversation_id: str) -> None:
        async with self._sessions.begin() as db:
            await db.execute(
                update(CallLog)
                .where(CallLog.conversation_id == conversation_id, CallLog.media_state == MediaState.LIVE)
                .values(media_state=MediaState.FINALIZED, updated_at=utcnow())
            )

    async def call_by_provider_conversation(
        self, provider: str, provider_conversation_id: str
    ) -> CallLog | None:
        """The call talkgate started this provider conversation for; None when none, or (rows
        from before ids were owned) when more than one names it."""
        async with self._sessions() as db:
            rows = list(
                await db.scalars(
                    select(CallLog)
                    .where(
                        CallLog.provider == provider,
                        CallLog.provider_conversation_id == provider_conversation_id,
                    )
                    .limit(2)
                )
            )
        return rows[0] if len(rows) == 1 else None

    # --- provider webhooks ---

    async def claim_webhook(self, digest: str, kind: str, provider_conversation_id: str | None) -> bool:
        """Record a webhook delivery; False when it was already recorded (a replay)."""
        now = utcnow()
        try:
            async with self._sessions.begin() as db:
                await db.execute(
                    delete(WebhookDelivery).where(WebhookDelivery.received_at < now - WEBHOOK_MEMORY)
                )
                db.add(
                    WebhookDelivery(
                        digest=digest,
                        kind=kind[:64],
                        provider_conversation_id=provider_conversation_id,
                        received_at=now,
                    )
                )
        except IntegrityError:
            return False
        return True

    async def release_webhook(self, digest: str) -> None:
        """A delivery that could not be applied: its retry may try again."""
        async with self._sessions.begin() as db:
            await db.execute(delete(WebhookDelivery).where(WebhookDelivery.digest == digest))

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
