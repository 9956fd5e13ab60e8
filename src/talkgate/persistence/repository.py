"""Every query talkgate makes. Each method is one short transaction; every read and write of a
user's rows is scoped by ``user_id``, so another user's id is simply not found."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, delete, func, insert, inspect, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from talkgate.errors import ConflictError, ErrorCode, NotFoundError
from talkgate.persistence.group_commit import GroupCommit
from talkgate.persistence.models import (
    AudioSource,
    CallLog,
    CallStatus,
    Cap,
    ConversationSession,
    MediaState,
    Rate,
    SessionStatus,
    TranscriptSource,
    User,
    WebhookDelivery,
    cuid,
    utcnow,
)
from talkgate.protocol.ends import EndReason

# Signed webhooks older than 30 minutes are refused (protocol.signing), so a delivery remembered
# for longer than that can never come back as an accepted replay.
WEBHOOK_MEMORY = timedelta(hours=1)

AUDIO_RANK: dict[AudioSource, int] = {
    AudioSource.PROVIDER: 1,
    AudioSource.CLIENT_CHUNKS: 2,
    AudioSource.RELAY: 3,
    AudioSource.MEDIA_STREAM: 4,
}


log = logging.getLogger("talkgate.persistence")

MAX_START_BATCH = 250  # conversation starts per transaction: bounds one transaction's time
MAX_LINK_BATCH = 250  # recordings attached per transaction

Opened = tuple[ConversationSession, CallLog]


@dataclass(frozen=True, slots=True)
class AudioSwap:
    """What ``set_call_audio`` did: whether the new recording is the call's now, and the stored
    object no call log names any more (to delete), if any. Truthy when attached."""

    attached: bool
    unused_key: str | None

    def __bool__(self) -> bool:
        return self.attached


@dataclass(frozen=True, slots=True)
class ProviderReport:
    """What the provider said about a finished call, as the call log keeps it (already bounded):
    ``transcript`` None leaves the call's own lines in place."""

    analysis: dict[str, Any] | None
    duration_s: float | None
    cost: float | None
    transcript: list[dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True)
class _Start:
    """One conversation start waiting for the next transaction."""

    user_id: str
    conversation_id: str
    metadata: dict[str, Any] | None
    audio_source: AudioSource | None
    provider: str | None
    provider_conversation_id: str | None
    agent_id: str | None
    voice: str | None


async def _nothing(_: object) -> None:
    """An abandoned write that needs no undoing."""


SESSIONS = cast(Table, ConversationSession.__table__)
CALLS = cast(Table, CallLog.__table__)
# Mapped attribute → column name (``metadata_`` is the column ``metadata``).
SESSIONS_BY_KEY = {attr.key: attr.columns[0].name for attr in inspect(ConversationSession).column_attrs}
CALLS_BY_KEY = {attr.key: attr.columns[0].name for attr in inspect(CallLog).column_attrs}
# What a call log row holds when a start sets nothing else (the columns' own defaults).
CALL_DEFAULTS: dict[str, Any] = {
    **{attr: None for attr in CALLS_BY_KEY},
    "provider": "elevenlabs",
    "status": CallStatus.ACTIVE,
}
# Statements of the start path, built once (each build coerces every clause anew).
INSERT_SESSIONS = insert(SESSIONS)
INSERT_CALLS = insert(CALLS)
# A user's row, unless it exists: [SQLite's, PostgreSQL's] (a list of rows: one executemany).
NEW_USERS = [
    dialect_insert(cast(Table, User.__table__)).on_conflict_do_nothing(index_elements=["id"])
    for dialect_insert in (sqlite_insert, pg_insert)
]
# A user's calls started since a moment (the hourly rate, asked on every start).
STARTS_SINCE = (
    select(func.count())
    .select_from(CALLS)
    .where(CALLS.c.user_id == bindparam("user"), CALLS.c.started_at >= bindparam("since"))
)
OWN_PROVIDER_ID = (
    update(CALLS)
    .where(CALLS.c.conversation_id == bindparam("cid"), CALLS.c.provider_conversation_id.is_(None))
    .values(provider_conversation_id=bindparam("pid"), updated_at=bindparam("now"))
)


def _columns(by_key: dict[str, str], row: dict[str, Any]) -> dict[str, Any]:
    return {by_key[key]: value for key, value in row.items()}


@dataclass(frozen=True, slots=True)
class _AudioLink:
    """One stored recording waiting for the next transaction to attach it (``set_call_audio``)."""

    conversation_id: str
    key: str
    url: str
    source: AudioSource
    nbytes: int
    status: CallStatus | None
    finalize_media: bool


def _swap(row: CallLog | None, link: _AudioLink) -> AudioSwap:
    """``set_call_audio``'s decision for a row already locked, made on the row in memory (so a
    batch holding two recordings of one call decides the second knowing the first)."""
    if row is None:
        return AudioSwap(False, link.key)
    if link.finalize_media and row.media_state == MediaState.LIVE:
        row.media_state = MediaState.FINALIZED
    if row.audio_key == link.key:  # this very object, linked by a relink racing its finish
        return AudioSwap(True, None)
    held = AUDIO_RANK[row.audio_source] if row.audio_source else 0
    if row.audio_key and held >= AUDIO_RANK[link.source]:
        return AudioSwap(False, link.key)
    replaced = row.audio_key
    row.audio_key, row.audio_url, row.audio_source = link.key, link.url, link.source
    row.audio_bytes = link.nbytes
    row.updated_at = utcnow()
    if link.status:
        row.status = link.status
    return AudioSwap(True, replaced)


def _given(**columns: object) -> dict[str, object]:
    """The columns a caller set: None means "leave the column as it is" (or its default)."""
    return {name: value for name, value in columns.items() if value is not None}


class Repository:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        # Users whose row this process has seen committed. Rows of users are never deleted, so a
        # conversation start of a known user skips the upsert: one statement fewer on the path
        # that a burst of apps connecting at once makes hot.
        self._known_users: set[str] = set()
        # Conversation starts waiting for the next transaction (``open_conversation``).
        self.starts: GroupCommit[_Start, Opened] = GroupCommit(
            commit_batch=self._open_together,
            commit_one=self._open_one,
            abandoned=self._end_abandoned,
            max_batch=MAX_START_BATCH,
        )
        # Relayed calls' provider ids, written once each call's provider socket has opened.
        self.provider_ids: GroupCommit[tuple[str, str], None] = GroupCommit(
            commit_batch=self._own_together,
            commit_one=self._own_one,
            abandoned=_nothing,
            max_batch=MAX_START_BATCH,
        )
        # Recordings attached to their calls (``set_call_audio``), group-committed like starts:
        # 100 calls ending at once made 100 transactions in turn on SQLite's one connection, and
        # the last recording waited seconds for its call log.
        self.audio_links: GroupCommit[_AudioLink, AudioSwap] = GroupCommit(
            commit_batch=self._link_together,
            commit_one=self._link_one,
            abandoned=self._link_abandoned,
            max_batch=MAX_LINK_BATCH,
        )
        # Media sockets claiming their calls (``claim_media_recording``), group-committed: 100
        # sockets opening at once made 300 transactions in turn, and every recording finished
        # meanwhile waited behind them for the one SQLite connection to attach itself.
        self.media_claims: GroupCommit[str, CallLog | None] = GroupCommit(
            commit_batch=self._claim_together,
            commit_one=self._claim_one,
            abandoned=self._claim_abandoned,
            max_batch=MAX_START_BATCH,
        )

    async def _ensure_user(self, db: AsyncSession, user_id: str) -> None:
        await self._ensure_users(db, [user_id])

    async def _ensure_users(self, db: AsyncSession, user_ids: list[str]) -> None:
        """The users' rows, those this process has not seen yet inserted in one statement."""
        new = [{"id": user_id} for user_id in dict.fromkeys(user_ids) if user_id not in self._known_users]
        if new:
            await db.execute(NEW_USERS[db.get_bind().dialect.name == "postgresql"], new)

    # --- conversation sessions (the conversation routes) ---

    async def start_session(
        self,
        user_id: str,
        session_id: str | None = None,
        metadata: dict[str, Any] | None = None,
        *,
        cap: Cap | None = None,
    ) -> ConversationSession:
        """A session for the user (the same ``session_id`` again returns it); with ``cap``, refused
        (``too_many_sessions``) when the user already has that many active ones."""
        async with self._sessions.begin() as db:
            await (self._hold_user if cap else self._ensure_user)(db, user_id)
            sid = session_id or cuid()
            existing = await db.scalar(
                select(ConversationSession).where(ConversationSession.session_id == sid)
            )
            if existing is not None:
                if existing.user_id != user_id:
                    raise ConflictError("that sessionId is taken")
                return existing
            if cap:
                await self._refuse_sessions_over_cap(db, user_id, cap)
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

    async def _refuse_sessions_over_cap(self, db: AsyncSession, user_id: str, cap: Cap) -> None:
        """``too_many_sessions`` when the user has ``cap.max_active`` active sessions started
        after ``cap.since``; the caller holds the user (``_hold_user``)."""
        active = await db.scalar(
            select(func.count())
            .select_from(ConversationSession)
            .where(
                ConversationSession.user_id == user_id,
                ConversationSession.status == SessionStatus.ACTIVE,
                ConversationSession.started_at >= cap.since,
            )
        )
        if (active or 0) >= cap.max_active:
            raise ConflictError(
                f"you have {cap.max_active} active sessions; end one first "
                "(TALKGATE_MAX_ACTIVE_SESSIONS_PER_USER)",
                code=ErrorCode.TOO_MANY_SESSIONS,
            )

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
        audio_source: AudioSource | None = None,
        provider: str | None = None,
        provider_conversation_id: str | None = None,
        agent_id: str | None = None,
        voice: str | None = None,
    ) -> Opened:
        """A new ConversationSession and its call log, committed together.

        This is the relay's start path, which a burst of apps connecting at once makes hot:
        starts that arrive while a transaction is under way are committed together in the next
        one (``group_commit``)."""
        start = _Start(
            user_id,
            conversation_id,
            metadata,
            audio_source,
            provider,
            provider_conversation_id,
            agent_id,
            voice,
        )
        return await self.starts.submit(start)

    async def open_conversation_capped(
        self,
        user_id: str,
        conversation_id: str,
        *,
        metadata: dict[str, Any] | None,
        provider: str,
        agent_id: str | None,
        voice: str | None,
        cap: Cap,
    ) -> Opened:
        """``open_conversation`` (not group-committed), refused (``too_many_conversations``) when the
        user already has ``max_active`` active calls started after ``since``. Taken before a
        provider is asked for anything, so a refused start costs the provider nothing."""
        start = _Start(user_id, conversation_id, metadata, None, provider, None, agent_id, voice)
        async with self._sessions.begin() as db:
            await self._hold_user(db, user_id)
            await self._refuse_over_cap(db, user_id, cap)
            (row,) = await self._insert_conversations(db, [start])
            return row

    async def _end_abandoned(self, opened: Opened) -> None:
        """A start committed after its caller gave up: nobody will end it, so end it now, rather
        than leave a call log "active" for ever."""
        session, call = opened
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

    async def _open_together(self, batch: list[_Start]) -> list[Opened]:
        async with self._sessions.begin() as db:
            rows = await self._insert_conversations(db, batch)
        self._known_users.update(start.user_id for start in batch)
        return rows

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
        """The batch's sessions and call logs, as two Core inserts (one statement each for the
        whole batch); the rows handed back are built from the very values inserted. The ORM's
        unit of work did the same in about twice the time: its flush tracks every object, sorts
        the tables and fetches what the database defaulted, none of which a start needs."""
        await self._ensure_users(db, [start.user_id for start in batch])
        now = utcnow()
        sessions: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for start in batch:
            session_id = cuid()
            sessions.append(
                {
                    "id": cuid(),
                    "user_id": start.user_id,
                    "session_id": session_id,
                    "status": SessionStatus.ACTIVE,
                    "metadata_": start.metadata,
                    "started_at": now,
                    "ended_at": None,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            calls.append(
                {
                    **CALL_DEFAULTS,
                    "id": cuid(),
                    "user_id": start.user_id,
                    "conversation_id": start.conversation_id,
                    "session_id": session_id,
                    "started_at": now,
                    "created_at": now,
                    "updated_at": now,
                    "transcript": [],
                    "turns": [],
                    **_given(
                        audio_source=start.audio_source,
                        provider=start.provider,
                        provider_conversation_id=start.provider_conversation_id,
                        agent_id=start.agent_id,
                        voice=start.voice,
                    ),
                }
            )
        await db.execute(INSERT_SESSIONS, [_columns(SESSIONS_BY_KEY, row) for row in sessions])
        await db.execute(INSERT_CALLS, [_columns(CALLS_BY_KEY, row) for row in calls])
        return [
            (ConversationSession(**session), CallLog(**call))
            for session, call in zip(sessions, calls, strict=True)
        ]

    async def discard_conversation(self, user_id: str, session_id: str, conversation_id: str) -> None:
        """A relayed start the provider refused: its session and call log, opened while the
        provider was asked, are removed (a start that did not happen leaves no call log)."""
        async with self._sessions.begin() as db:
            await db.execute(
                delete(CallLog).where(CallLog.conversation_id == conversation_id, CallLog.user_id == user_id)
            )
            await db.execute(
                delete(ConversationSession).where(
                    ConversationSession.session_id == session_id, ConversationSession.user_id == user_id
                )
            )

    async def own_relay_conversation(self, conversation_id: str, provider_conversation_id: str) -> None:
        """The provider's id for a relayed call, as its conversation socket said it: written once
        (only while none is set), after the call log was opened under talkgate's own id.
        Group-committed like the starts themselves."""
        await self.provider_ids.submit((conversation_id, provider_conversation_id))

    async def _own_together(self, batch: list[tuple[str, str]]) -> list[None]:
        now = utcnow()
        async with self._sessions.begin() as db:
            await db.execute(OWN_PROVIDER_ID, [{"cid": cid, "pid": pid, "now": now} for cid, pid in batch])
        return [None] * len(batch)

    async def _own_one(self, item: tuple[str, str]) -> None:
        await self._own_together([item])

    async def close_conversation(
        self,
        user_id: str,
        session_id: str,
        conversation_id: str,
        *,
        duration_ms: int | None = None,
        status: CallStatus | None = None,
        transcript: list[dict[str, Any]] | None = None,
        turns: list[dict[str, Any]] | None = None,
        end_reason: str | None = None,
        provider_conversation_id: str | None = None,
    ) -> None:
        """End the session and finish its call log in one transaction (a None leaves that
        column as it is). ``provider_conversation_id`` (what the provider's socket said) is set
        only if the call log has none yet: the relay's own write of it may not have landed."""
        now = utcnow()
        values: dict[str, object] = {"ended_at": now, "updated_at": now}
        values.update(
            _given(
                duration_ms=duration_ms,
                status=status,
                transcript=transcript,
                turns=turns,
                end_reason=end_reason,
            )
        )
        if provider_conversation_id is not None:
            values["provider_conversation_id"] = func.coalesce(
                CallLog.provider_conversation_id, provider_conversation_id
            )
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

    async def create_call(
        self,
        user_id: str,
        conversation_id: str,
        *,
        session_id: str | None = None,
        provider: str | None = None,
        provider_conversation_id: str | None = None,
        agent_id: str | None = None,
        voice: str | None = None,
        cap: Cap | None = None,
    ) -> CallLog:
        """A call log for the user (the same ``conversation_id`` again returns it); with ``cap``,
        refused (``too_many_conversations``) when the user already has that many calls active."""
        async with self._sessions.begin() as db:
            await (self._hold_user if cap else self._ensure_user)(db, user_id)
            existing = await db.scalar(select(CallLog).where(CallLog.conversation_id == conversation_id))
            if existing is not None:
                if existing.user_id != user_id:
                    raise ConflictError("that conversationId is taken")
                return existing
            if cap:
                await self._refuse_over_cap(db, user_id, cap)
            row = _new_call(
                user_id,
                conversation_id,
                session_id=session_id,
                provider=provider,
                provider_conversation_id=provider_conversation_id,
                agent_id=agent_id,
                voice=voice,
            )
            db.add(row)
            await db.flush()
            return row

    async def _refuse_over_cap(self, db: AsyncSession, user_id: str, cap: Cap) -> None:
        """``too_many_conversations`` when the user has ``cap.max_active`` active calls (of any
        mode) started after ``cap.since``; the caller holds the user (``_hold_user``)."""
        active = await db.scalar(
            select(func.count())
            .select_from(CallLog)
            .where(
                CallLog.user_id == user_id,
                CallLog.status == CallStatus.ACTIVE,
                CallLog.started_at >= cap.since,
            )
        )
        if (active or 0) >= cap.max_active:
            raise ConflictError(
                f"you have {cap.max_active} conversations in progress; end one first "
                "(TALKGATE_MAX_ACTIVE_CALLS_PER_USER)",
                code=ErrorCode.TOO_MANY_CONVERSATIONS,
            )
        if cap.rate is not None:
            await self._refuse_over_rate(db, user_id, cap.rate)

    async def _refuse_over_rate(self, db: AsyncSession, user_id: str, rate: Rate) -> None:
        """``too_many_calls`` when the user started ``rate.max_starts`` calls (of any mode and
        status: an ended call still cost its start) after ``rate.since``."""
        if not rate.max_starts:
            return
        started = await db.scalar(STARTS_SINCE, {"user": user_id, "since": rate.since})
        if (started or 0) >= rate.max_starts:
            raise ConflictError(
                f"you started {rate.max_starts} calls in the last hour; try again later "
                "(TALKGATE_MAX_CALLS_PER_USER_PER_HOUR)",
                code=ErrorCode.TOO_MANY_CALLS,
            )

    async def refuse_over_rate(self, user_id: str, rate: Rate) -> None:
        """The rate alone, for the relay's start (asked before the provider is): its call log is
        written later, group-committed, so concurrent relay starts of one user may each pass
        (at most the user's live relay conversations, ``TALKGATE_MAX_CONVERSATIONS_PER_USER``)."""
        async with self._sessions() as db:
            await self._refuse_over_rate(db, user_id, rate)

    async def finish_call(
        self,
        conversation_id: str,
        *,
        ended_at: datetime | None = None,
        duration_ms: int | None = None,
        status: CallStatus = CallStatus.ENDED,
        end_reason: str | None = None,
        transcript: list[dict[str, Any]] | None = None,
        turns: list[dict[str, Any]] | None = None,
        active_only: bool = False,
    ) -> bool:
        """Close the call log; ``active_only``: only if it is still active (two enders racing, the
        first one's reason stays). Whether a row changed."""
        values: dict[str, object] = {
            "status": status,
            "ended_at": ended_at or utcnow(),
            "updated_at": utcnow(),
        }
        values.update(
            _given(duration_ms=duration_ms, end_reason=end_reason, transcript=transcript, turns=turns)
        )
        where = [CallLog.conversation_id == conversation_id]
        if active_only:
            where.append(CallLog.status == CallStatus.ACTIVE)
        async with self._sessions.begin() as db:
            done = await db.execute(update(CallLog).where(*where).values(**values))
            return bool(done.rowcount)  # type: ignore[attr-defined]

    # --- signs of life, and calls without any (calls.idle) ---

    async def touch_call(self, conversation_id: str) -> None:
        """The call showed a sign of life (a chunk, a keep-alive): its idle time starts again."""
        async with self._sessions.begin() as db:
            await db.execute(
                update(CallLog)
                .where(CallLog.conversation_id == conversation_id, CallLog.status == CallStatus.ACTIVE)
                .values(updated_at=utcnow())
            )

    async def idle_calls(self, cutoff: datetime, *, limit: int) -> list[CallLog]:
        """Active calls that talkgate does not carry itself and that nothing touched since
        ``cutoff``: not relayed (the relay ends its own) and no media socket holding them."""
        relayed = (CallLog.provider == "elevenlabs") & CallLog.session_id.is_not(None)
        async with self._sessions() as db:
            rows = await db.scalars(
                select(CallLog)
                .where(
                    CallLog.status == CallStatus.ACTIVE,
                    CallLog.updated_at < cutoff,
                    ~relayed,
                    CallLog.media_state.is_(None) | (CallLog.media_state != MediaState.LIVE),
                )
                .order_by(CallLog.updated_at)
                .limit(limit)
            )
            return list(rows)

    async def claim_idle_call(self, conversation_id: str, cutoff: datetime, now: datetime) -> bool:
        """Take an idle call to end it, once across processes: the conditional write succeeds for
        one reaper only (the others then see it touched), and fails if the call showed life or
        ended meanwhile. A reaper that dies after the claim leaves the call for a later round."""
        async with self._sessions.begin() as db:
            done = await db.execute(
                update(CallLog)
                .where(
                    CallLog.conversation_id == conversation_id,
                    CallLog.status == CallStatus.ACTIVE,
                    CallLog.updated_at < cutoff,
                )
                .values(updated_at=now)
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

    async def append_transcript(
        self,
        user_id: str,
        conversation_id: str,
        entries: list[dict[str, Any]],
        *,
        limit: int,
        active_only: bool = False,
    ) -> int | None:
        """Add lines to a user's call transcript (at most ``limit`` in all); returns its length, or
        None when ``active_only`` and the call has ended (checked under the row's lock)."""
        async with self._sessions.begin() as db:
            row = await db.scalar(
                select(CallLog)
                .where(CallLog.conversation_id == conversation_id, CallLog.user_id == user_id)
                .with_for_update()
            )
            if row is None:
                raise NotFoundError("no such call")
            if active_only and row.status != CallStatus.ACTIVE:
                return None
            if row.transcript_source == TranscriptSource.PROVIDER:
                # The provider's transcript came after the call; a late line from the page would
                # only be a second, worse copy of one of its lines.
                return len(row.transcript)
            if len(row.transcript) + len(entries) > limit:
                raise ConflictError(f"a call keeps at most {limit} transcript lines")
            row.transcript = [*row.transcript, *entries]  # a new list: the JSON column sees the change
            row.updated_at = utcnow()
            return len(row.transcript)

    async def mark_recording(self, conversation_id: str, source: AudioSource | str | None) -> None:
        """A live recording of ``source`` has begun: other processes' call ends wait for it
        (None: the recording that was announced could not start)."""
        async with self._sessions.begin() as db:
            await db.execute(
                update(CallLog)
                .where(CallLog.conversation_id == conversation_id, CallLog.audio_key.is_(None))
                .values(audio_source=AudioSource(source) if source else None, updated_at=utcnow())
            )

    async def set_call_audio(
        self,
        conversation_id: str,
        *,
        key: str,
        url: str,
        source: AudioSource | str,
        nbytes: int,
        status: CallStatus | None = None,
        finalize_media: bool = False,
    ) -> AudioSwap:
        """Attach the object stored under ``key`` unless the call already has a recording from as
        good a source (media stream > relay > the app's chunks > the provider's copy). Deciding
        and switching are one transaction holding the call's row, so of two racing writers one
        wins and the other learns it lost; the result names the object nothing refers to now
        (the replaced one, or ``key`` itself if refused), for the caller to delete.
        ``finalize_media``: in the same transaction, the call's media socket is done
        (``finalize_media``), whether or not this recording is attached.

        Equal rank keeps what is attached: a second recording of the same source is a replay (a
        webhook, a provider fetch after the webhook) or a repair of a file whose finished copy
        already arrived, and the first one is what the user was told about.

        Recordings stored while a transaction is under way are attached together in the next one
        (``group_commit``): each decided as if alone, in the order they came."""
        link = _AudioLink(conversation_id, key, url, AudioSource(source), nbytes, status, finalize_media)
        return await self.audio_links.submit(link)

    async def _link_one(self, link: _AudioLink) -> AudioSwap:
        async with self._sessions.begin() as db:
            rows = await self._lock_calls(db, [link.conversation_id])
            return _swap(rows.get(link.conversation_id), link)

    async def _link_together(self, batch: list[_AudioLink]) -> list[AudioSwap]:
        async with self._sessions.begin() as db:
            rows = await self._lock_calls(db, sorted({link.conversation_id for link in batch}))
            return [_swap(rows.get(link.conversation_id), link) for link in batch]

    async def _lock_calls(self, db: AsyncSession, conversation_ids: list[str]) -> dict[str, CallLog]:
        """The calls' rows, locked for the transaction, by conversation id."""
        # A write first: it takes the rows' locks on PostgreSQL and the database's write lock on
        # SQLite (whose SELECT … FOR UPDATE is a plain SELECT) before the rows are read.
        await db.execute(
            update(CallLog)
            .where(CallLog.conversation_id.in_(conversation_ids))
            .values(updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        rows = await db.scalars(
            select(CallLog)
            .where(CallLog.conversation_id.in_(conversation_ids))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return {row.conversation_id: row for row in rows}

    async def _link_abandoned(self, swap: AudioSwap) -> None:
        """A recording attached after its caller stopped waiting (the server stopping): the call
        log is right; only the object it no longer names, if any, is left for nobody to delete."""
        if swap.unused_key:
            log.warning("stored object %s is named by no call log and was not deleted", swap.unused_key)

    async def record_provider_report(self, conversation_id: str, report: ProviderReport) -> bool:
        """Store what the provider reported after the call on its call log, in one statement. What
        a report leaves out (None) stays as an earlier report set it: a later delivery without an
        analysis does not erase one."""
        values: dict[str, object] = {"updated_at": utcnow()}
        values.update(
            _given(analysis=report.analysis, provider_duration_s=report.duration_s, provider_cost=report.cost)
        )
        if report.transcript is not None:
            values["transcript"] = report.transcript
            values["transcript_source"] = TranscriptSource.PROVIDER
        async with self._sessions.begin() as db:
            done = await db.execute(
                update(CallLog).where(CallLog.conversation_id == conversation_id).values(**values)
            )
            return bool(done.rowcount)  # type: ignore[attr-defined]

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

    async def claim_media_recording(self, conversation_id: str) -> CallLog | None:
        """``claim_media`` and ``mark_recording(media_stream)`` in one transaction: the call, now
        naming its live media recording (unless it has a recording already), or None when it
        cannot be claimed. Claims that arrive while a transaction is under way are committed
        together in the next one; of two for one call, the first wins."""
        return await self.media_claims.submit(conversation_id)

    async def _claim_one(self, conversation_id: str) -> CallLog | None:
        return (await self._claim_together([conversation_id]))[0]

    async def _claim_together(self, batch: list[str]) -> list[CallLog | None]:
        async with self._sessions.begin() as db:
            claimed = set(
                await db.scalars(
                    update(CALLS)
                    .where(
                        CALLS.c.conversation_id.in_(sorted(set(batch))),
                        CALLS.c.status == CallStatus.ACTIVE,
                        CALLS.c.media_state == MediaState.ISSUED,
                    )
                    .values(
                        media_state=MediaState.LIVE,
                        audio_source=case(
                            (CALLS.c.audio_key.is_(None), AudioSource.MEDIA_STREAM.value),
                            else_=CALLS.c.audio_source,
                        ),
                        updated_at=utcnow(),
                    )
                    .returning(CALLS.c.conversation_id)
                )
            )
            rows = {}
            if claimed:
                found = await db.scalars(select(CallLog).where(CallLog.conversation_id.in_(sorted(claimed))))
                rows = {row.conversation_id: row for row in found}
        results: list[CallLog | None] = []
        for conversation_id in batch:
            results.append(rows.pop(conversation_id, None))  # a second claim of one call: None
        return results

    async def _claim_abandoned(self, call: CallLog | None) -> None:
        """A claim committed after its socket stopped waiting: nobody records the call, so it
        must not stay live or name a recording that will never come."""
        if call is None:
            return
        try:
            await self.finalize_media(call.conversation_id)
            await self.mark_recording(call.conversation_id, None)
        except Exception:
            log.exception("call log %s: could not release an abandoned media claim", call.conversation_id)

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


def _new_call(user_id: str, conversation_id: str, **columns: str | None) -> CallLog:
    """A call log row with an empty transcript; a None column takes its default."""
    return CallLog(
        user_id=user_id, conversation_id=conversation_id, transcript=[], turns=[], **_given(**columns)
    )
