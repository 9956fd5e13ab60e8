"""The repository on SQLite and on PostgreSQL: the same behaviour, row for row."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, event, select, text
from sqlalchemy.exc import StatementError

from talkgate.errors import ConflictError, ErrorCode, NotFoundError
from talkgate.persistence.models import (
    AudioSource,
    CallLog,
    CallStatus,
    ConversationSession,
    Rate,
    SessionStatus,
    User,
    cuid,
)
from talkgate.persistence.repository import Repository


def uid() -> str:
    return f"user_{cuid()}"


async def test_sessions_follow_seed_004(repo):
    alice = uid()
    row = await repo.start_session(alice, metadata={"agentId": "a1"})
    assert (row.user_id, row.status, row.metadata_, row.ended_at) == (
        alice,
        SessionStatus.ACTIVE,
        {"agentId": "a1"},
        None,
    )
    assert len(row.id) >= 20 and row.id[0] == "c"  # cuid-like
    again = await repo.start_session(alice, row.session_id)
    assert again.id == row.id
    with pytest.raises(ConflictError):
        await repo.start_session(uid(), row.session_id)
    ended = await repo.end_session(alice, row.session_id)
    assert ended.status == SessionStatus.ENDED and ended.ended_at is not None
    assert (await repo.end_session(alice, row.session_id)).ended_at == ended.ended_at  # idempotent
    with pytest.raises(NotFoundError):
        await repo.end_session(uid(), row.session_id)


async def test_call_logs_are_per_user_and_newest_first(repo):
    alice, bob = uid(), uid()
    for i in range(3):
        await repo.create_call(alice, f"conv_{alice}_{i}", agent_id="a1", voice="default")
    await repo.create_call(bob, f"conv_{bob}")
    rows, total = await repo.list_calls(alice, limit=2)
    assert total == 3 and [r.conversation_id for r in rows] == [f"conv_{alice}_2", f"conv_{alice}_1"]
    with pytest.raises(NotFoundError):
        await repo.get_call(bob, f"conv_{alice}_0")
    with pytest.raises(ConflictError):
        await repo.create_call(bob, f"conv_{alice}_0")
    await repo.finish_call(f"conv_{alice}_0", duration_ms=1234, transcript=[{"role": "user", "text": "hi"}])
    done = await repo.get_call(alice, f"conv_{alice}_0")
    assert (done.status, done.duration_ms, done.transcript) == (
        CallStatus.ENDED,
        1234,
        [{"role": "user", "text": "hi"}],
    )


async def test_a_better_recording_source_wins_and_a_worse_one_does_not(repo):
    alice = uid()
    cid = f"conv_{alice}"
    await repo.create_call(alice, cid)
    await repo.mark_recording(cid, AudioSource.MEDIA_STREAM)
    assert (await repo.call_by_conversation(cid)).audio_source == "media_stream"
    assert await repo.set_call_audio(
        cid, key="calls/a.wav", url="u1", source=AudioSource.CLIENT_CHUNKS, nbytes=10
    )
    assert await repo.set_call_audio(
        cid, key="calls/b.wav", url="u2", source=AudioSource.MEDIA_STREAM, nbytes=20
    )
    assert not await repo.set_call_audio(
        cid, key="calls/c.wav", url="u3", source=AudioSource.PROVIDER, nbytes=30
    )
    row = await repo.call_by_conversation(cid)
    assert (row.audio_key, row.audio_source, row.audio_bytes) == ("calls/b.wav", "media_stream", 20)


async def test_deleting_a_user_cascades_to_sessions_and_calls(repo):
    alice = uid()
    session = await repo.start_session(alice)
    await repo.create_call(alice, f"conv_{alice}", session_id=session.session_id)
    async with repo._sessions.begin() as db:
        await db.execute(delete(User).where(User.id == alice))
    async with repo._sessions() as db:
        left = await db.scalar(
            text("select count(*) from call_logs where user_id = :u").bindparams(u=alice)
        ) + await db.scalar(
            text("select count(*) from conversation_sessions where user_id = :u").bindparams(u=alice)
        )
    assert left == 0


async def test_a_conversation_start_recreates_a_user_deleted_since_its_last_start(repo):
    """The repository remembers which users exist to save a statement per start; a user deleted
    meanwhile (by an operator) is inserted again, not a failed start."""
    alice = uid()
    await repo.open_conversation(alice, f"conv_{cuid()}", metadata=None)
    async with repo._sessions.begin() as db:
        await db.execute(delete(User).where(User.id == alice))
    _, call = await repo.open_conversation(alice, f"conv_{cuid()}", metadata=None)
    assert (await repo.get_call(alice, call.conversation_id)).user_id == alice


async def test_a_relayed_conversation_opens_and_closes_its_session_and_call_together(repo):
    alice, bob = uid(), uid()
    cid = f"conv_{cuid()}"
    session, call = await repo.open_conversation(
        alice, cid, metadata={"agentId": "a1"}, audio_source=AudioSource.RELAY, agent_id="a1", voice="male"
    )
    assert (session.user_id, session.status, session.metadata_) == (
        alice,
        SessionStatus.ACTIVE,
        {"agentId": "a1"},
    )
    assert (call.session_id, call.audio_source, call.agent_id, call.voice) == (
        session.session_id,
        AudioSource.RELAY,
        "a1",
        "male",
    )
    assert call.started_at == session.started_at
    with pytest.raises(ConflictError):  # a provider conversation id belongs to one call log
        await repo.open_conversation(bob, cid, metadata=None)

    await repo.close_conversation(
        alice, session.session_id, cid, duration_ms=1500, status=CallStatus.ENDED, end_reason="client"
    )
    ended = await repo.get_call(alice, cid)
    assert (ended.status, ended.duration_ms, ended.end_reason) == (CallStatus.ENDED, 1500, "client")
    assert ended.ended_at is not None
    listed = await repo.end_session(alice, session.session_id)  # idempotent: already ended
    assert listed.status == SessionStatus.ENDED
    with pytest.raises(NotFoundError):
        await repo.get_call(bob, cid)


def count_commits(repo: Repository) -> list[int]:
    commits = [0]

    def on_commit(_: object) -> None:
        commits[0] += 1

    event.listen(repo._sessions.kw["bind"].sync_engine, "commit", on_commit)
    return commits


async def test_conversation_starts_arriving_together_are_committed_together(repo):
    """A burst of starts (apps connecting at once) takes a few transactions, not one each, and
    every start gets its own session and call log, as if it had been alone."""
    alice, bob = uid(), uid()
    commits = count_commits(repo)
    users = [alice if i % 2 else bob for i in range(60)]
    cids = [f"conv_{cuid()}" for _ in users]
    opened = await asyncio.gather(
        *(
            repo.open_conversation(u, c, metadata={"n": i}, audio_source=AudioSource.RELAY, voice="male")
            for i, (u, c) in enumerate(zip(users, cids, strict=True))
        )
    )
    assert commits[0] <= 3  # the first start alone, then the rest together
    assert len({session.session_id for session, _ in opened}) == 60
    for i, (session, call) in enumerate(opened):
        assert (session.user_id, session.metadata_, call.conversation_id) == (users[i], {"n": i}, cids[i])
        assert (call.session_id, call.voice, call.status) == (session.session_id, "male", CallStatus.ACTIVE)
    rows, total = await repo.list_calls(alice, limit=100)
    assert total == 30 and {r.conversation_id for r in rows} == set(cids[1::2])


async def test_recordings_stored_together_are_attached_together_each_as_if_alone(repo):
    """Calls ending at once: their recordings are attached in a few transactions, not one each;
    each is decided as if it had come alone, in order (two of one call in one batch: the better
    one wins whichever came first), and the media socket of each call is marked done with it."""
    alice = uid()
    calls = [await repo.create_call(alice, f"conv_{cuid()}") for _ in range(40)]
    for call in calls:
        assert await repo.issue_media(alice, call.conversation_id, None)
        assert await repo.claim_media(call.conversation_id)
    commits = count_commits(repo)
    first, second = calls[0].conversation_id, calls[1].conversation_id
    links = [
        *((c.conversation_id, f"media-{i}", "media_stream", True) for i, c in enumerate(calls)),
        (first, "relay-after", "relay", False),  # worse, after the media stream's: refused
        (second, "media-again", "media_stream", True),  # as good, after: refused
        (f"conv_{cuid()}", "nobody", "relay", False),  # no such call
    ]
    swaps = await asyncio.gather(
        *(
            repo.set_call_audio(cid, key=key, url="u", source=source, nbytes=i + 1, finalize_media=media)
            for i, (cid, key, source, media) in enumerate(links)
        )
    )
    assert commits[0] <= 3  # together (the first, perhaps, alone), not one each
    assert [(s.attached, s.unused_key) for s in swaps] == [
        *((True, None) for _ in calls),
        (False, "relay-after"),
        (False, "media-again"),
        (False, "nobody"),
    ]
    for i, call in enumerate(calls):
        row = await repo.call_by_conversation(call.conversation_id)
        assert (row.audio_key, row.audio_source, row.audio_bytes) == (f"media-{i}", "media_stream", i + 1)
        assert row.media_state == "finalized"
    # A better recording in the same batch as a worse one of the same call replaces it.
    third = calls[2].conversation_id
    third_call = await repo.create_call(alice, f"conv_{cuid()}")
    swaps = await asyncio.gather(
        repo.set_call_audio(third, key="later", url="u", source="provider", nbytes=1),
        repo.set_call_audio(
            third_call.conversation_id, key="chunks", url="u", source="client_chunks", nbytes=2
        ),
        repo.set_call_audio(third_call.conversation_id, key="relay", url="u", source="relay", nbytes=3),
    )
    assert [(s.attached, s.unused_key) for s in swaps] == [(False, "later"), (True, None), (True, "chunks")]
    row = await repo.call_by_conversation(third_call.conversation_id)
    assert (row.audio_key, row.audio_source, row.audio_bytes, row.media_state) == ("relay", "relay", 3, None)


async def test_media_sockets_opening_together_are_claimed_together_each_as_if_alone(repo):
    """Media sockets opening at once: their claims take a few transactions, not one each; a call
    is claimed once (a second claim, in the same batch or later, gets nothing), only while its URL
    is issued, and its call log then names its live recording unless it has a recording already."""
    alice = uid()
    calls = [await repo.create_call(alice, f"conv_{cuid()}") for _ in range(30)]
    for call in calls:
        assert await repo.issue_media(alice, call.conversation_id, None)
    has_one = calls[0].conversation_id
    await repo.set_call_audio(has_one, key="k", url="u", source="provider", nbytes=1)
    not_issued = await repo.create_call(alice, f"conv_{cuid()}")
    cids = [c.conversation_id for c in calls]
    commits = count_commits(repo)
    claimed = await asyncio.gather(
        *(
            repo.claim_media_recording(cid)
            for cid in [*cids, cids[1], not_issued.conversation_id, f"conv_{cuid()}"]
        )
    )
    assert commits[0] <= 3  # together (the first, perhaps, alone), not one each
    assert [c.conversation_id if c else None for c in claimed] == [*cids, None, None, None]
    assert claimed[1].audio_source == "media_stream"  # the row handed back is the claimed one
    for cid in cids:
        row = await repo.call_by_conversation(cid)
        assert row.media_state == "live"
        assert row.audio_source == ("provider" if cid == has_one else "media_stream")
    assert await repo.claim_media_recording(cids[2]) is None  # once
    assert (await repo.call_by_conversation(not_issued.conversation_id)).audio_source is None


async def test_a_conflicting_start_in_a_burst_fails_alone(repo):
    alice, bob = uid(), uid()
    taken = f"conv_{cuid()}"
    await repo.open_conversation(alice, taken, metadata=None)
    twice = f"conv_{cuid()}"
    cids = [f"conv_{cuid()}", taken, twice, twice, f"conv_{cuid()}"]
    results = await asyncio.gather(
        *(repo.open_conversation(bob, c, metadata=None) for c in cids), return_exceptions=True
    )
    kinds = [type(r).__name__ for r in results]
    assert kinds == ["tuple", "ConflictError", "tuple", "ConflictError", "tuple"]
    assert str(results[1]) == "that conversationId is taken"
    _, total = await repo.list_calls(bob, limit=10)
    assert total == 3
    assert (await repo.get_call(alice, taken)).user_id == alice  # the first owner keeps it


async def test_a_start_whose_caller_gave_up_is_ended_not_left_active(repo):
    alice = uid()
    await repo.open_conversation(alice, f"conv_{cuid()}", metadata=None)
    cid = f"conv_{cuid()}"
    waiting = asyncio.create_task(repo.open_conversation(alice, cid, metadata=None))
    await asyncio.sleep(0)  # queued for the next transaction
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await repo.starts.settled()  # the transaction, then the clean-up
    call = await repo.get_call(alice, cid)
    assert (call.status, call.end_reason, call.ended_at is not None) == (CallStatus.FAILED, "cancelled", True)


async def test_starts_waiting_on_a_stopped_transaction_are_cancelled_not_left_hanging(repo):
    """The server stopping cancels the task that commits starts: every start it held gets
    CancelledError at once, and the next start is committed by a new one."""
    alice = uid()
    waiting = [
        asyncio.create_task(repo.open_conversation(alice, f"conv_{cuid()}", metadata=None)) for _ in range(3)
    ]
    await asyncio.sleep(0)  # the starts are queued and the committing task is created
    await asyncio.sleep(0)  # it has begun its transaction
    assert repo.starts.committing
    repo.starts.stop()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert [type(r) for r in results] == [asyncio.CancelledError] * 3
    _, call = await repo.open_conversation(alice, f"conv_{cuid()}", metadata=None)
    assert (await repo.get_call(alice, call.conversation_id)).status == CallStatus.ACTIVE


async def test_statuses_come_back_typed_and_an_unknown_one_is_refused(repo):
    alice = uid()
    session, call = await repo.open_conversation(
        alice, f"conv_{cuid()}", metadata=None, audio_source=AudioSource.RELAY
    )
    await repo.set_call_audio(call.conversation_id, key="k", url="u", source="media_stream", nbytes=2)
    stored = await repo.get_call(alice, call.conversation_id)
    assert type(stored.status) is CallStatus and stored.status is CallStatus.ACTIVE
    assert type(stored.audio_source) is AudioSource and stored.audio_source is AudioSource.MEDIA_STREAM
    ended = await repo.end_session(alice, session.session_id)
    assert type(ended.status) is SessionStatus and ended.status is SessionStatus.ENDED
    with pytest.raises(StatementError):  # a typo'd status never reaches the table
        await repo.finish_call(call.conversation_id, status="endd")  # type: ignore[arg-type]
    assert (await repo.get_call(alice, call.conversation_id)).status is CallStatus.ACTIVE


async def test_a_started_conversations_rows_are_what_the_database_holds(repo):
    """Starts insert their rows without the ORM's unit of work: the rows handed back are the
    database's, column for column (defaults included)."""
    alice = uid()
    session, call = await repo.open_conversation(
        alice, f"relay_{cuid()}", metadata={"agentId": "a1"}, audio_source=AudioSource.RELAY, agent_id="a1"
    )
    stored = await repo.get_call(alice, call.conversation_id)
    columns = [c.key for c in CallLog.__table__.columns]
    assert {k: getattr(call, k) for k in columns} == {k: getattr(stored, k) for k in columns}
    assert (stored.provider, stored.status, stored.voice, stored.transcript) == (
        "elevenlabs",
        "active",
        None,
        [],
    )
    async with repo._sessions() as db:
        held = await db.scalar(select(ConversationSession).where(ConversationSession.id == session.id))
    columns = ["id", "user_id", "session_id", "status", "metadata_", "started_at", "ended_at", "created_at"]
    assert {k: getattr(session, k) for k in columns} == {k: getattr(held, k) for k in columns}


async def test_a_relayed_call_takes_its_provider_id_once_and_its_end_fills_it_only_if_missing(repo):
    """The relay writes the call log under talkgate's id before the provider's socket has said
    its own: the provider's id is written once, afterwards; the end writes it only if it is
    still missing (its first write lost to a database away)."""
    alice = uid()
    (s1, c1), (s2, c2) = [
        await repo.open_conversation(alice, f"relay_{cuid()}", metadata=None, audio_source=AudioSource.RELAY)
        for _ in range(2)
    ]
    assert c1.provider_conversation_id is None
    await repo.own_relay_conversation(c1.conversation_id, "conv_p1")
    await repo.own_relay_conversation(c1.conversation_id, "conv_other")  # once only
    await repo.close_conversation(
        alice, s1.session_id, c1.conversation_id, provider_conversation_id="conv_p9"
    )
    await repo.close_conversation(
        alice, s2.session_id, c2.conversation_id, provider_conversation_id="conv_p2"
    )
    assert (await repo.get_call(alice, c1.conversation_id)).provider_conversation_id == "conv_p1"
    assert (await repo.get_call(alice, c2.conversation_id)).provider_conversation_id == "conv_p2"
    assert (await repo.call_by_provider_conversation("elevenlabs", "conv_p1")).id == c1.id  # type: ignore[union-attr]


async def test_provider_ids_arriving_together_are_committed_together(repo):
    alice = uid()
    opened = await asyncio.gather(
        *(repo.open_conversation(alice, f"relay_{cuid()}", metadata=None) for _ in range(40))
    )
    commits = count_commits(repo)
    await asyncio.gather(
        *(repo.own_relay_conversation(c.conversation_id, f"conv_{i}") for i, (_, c) in enumerate(opened))
    )
    assert commits[0] <= 3
    for i, (_, call) in enumerate(opened):
        assert (await repo.get_call(alice, call.conversation_id)).provider_conversation_id == f"conv_{i}"


async def test_a_start_the_provider_refused_is_discarded_for_its_user_only(repo):
    alice, bob = uid(), uid()
    session, call = await repo.open_conversation(alice, f"relay_{cuid()}", metadata=None)
    await repo.discard_conversation(bob, session.session_id, call.conversation_id)  # not bob's
    assert (await repo.get_call(alice, call.conversation_id)).id == call.id
    await repo.discard_conversation(alice, session.session_id, call.conversation_id)
    with pytest.raises(NotFoundError):
        await repo.get_call(alice, call.conversation_id)
    async with repo._sessions() as db:
        assert (
            await db.scalar(select(ConversationSession).where(ConversationSession.id == session.id)) is None
        )
    assert (await repo.list_calls(alice))[1] == 0


async def test_new_users_of_a_burst_of_starts_are_inserted_in_one_statement(repo):
    """A burst of first-time users (apps connecting at once) costs one users statement per
    transaction, not one per user."""
    users = [uid() for _ in range(30)]
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        statements.append(statement)

    event.listen(repo._sessions.kw["bind"].sync_engine, "before_cursor_execute", seen)
    await asyncio.gather(*(repo.open_conversation(u, f"relay_{cuid()}", metadata=None) for u in users))
    inserts = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO USERS")]
    transactions = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO CALL_LOGS")]
    assert len(inserts) == len(transactions) <= 3
    for user in users:
        assert (await repo.list_calls(user))[1] == 1
    # Known since: their next starts insert no user at all.
    statements.clear()
    await asyncio.gather(*(repo.open_conversation(u, f"relay_{cuid()}", metadata=None) for u in users[:5]))
    assert not [s for s in statements if s.lstrip().upper().startswith("INSERT INTO USERS")]


async def test_the_hourly_rate_counts_the_users_calls_started_since_its_moment_only(repo):
    alice, bob = uid(), uid()
    for _ in range(2):
        await repo.open_conversation(alice, f"relay_{cuid()}", metadata=None)
    await repo.open_conversation(bob, f"relay_{cuid()}", metadata=None)
    now = datetime.now(UTC)
    with pytest.raises(ConflictError) as refused:
        await repo.refuse_over_rate(alice, Rate(2, now - timedelta(hours=1)))
    assert refused.value.code is ErrorCode.TOO_MANY_CALLS
    await repo.refuse_over_rate(alice, Rate(3, now - timedelta(hours=1)))  # under it
    await repo.refuse_over_rate(alice, Rate(1, now + timedelta(seconds=1)))  # none since
    await repo.refuse_over_rate(bob, Rate(2, now - timedelta(hours=1)))  # another user's own count
