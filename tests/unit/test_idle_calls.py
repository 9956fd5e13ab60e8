"""The idle reaper (talkgate.calls.idle) on a fake clock, over a fake repository that claims rows
as the database does: a call idle for the timeout ends ``abandoned`` with its recording from what
arrived, its avatar session stopped; a call that showed life stays; two reapers end a call once."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from talkgate.calls import idle
from talkgate.persistence.models import CallStatus
from talkgate.protocol.ends import EndReason

pytestmark = [pytest.mark.unit, pytest.mark.timeout(5)]

T0 = datetime(2026, 1, 1, tzinfo=UTC)
TIMEOUT_S = 300.0


@dataclass
class Row:
    conversation_id: str
    provider: str
    updated_at: datetime
    session_id: str | None = None
    provider_conversation_id: str | None = None
    id: str = "c1"
    user_id: str = "alice"
    status: CallStatus = CallStatus.ACTIVE
    started_at: datetime = T0
    audio_key: str | None = None
    audio_source: Any = None
    end_reason: str | None = None


@dataclass
class World:
    """The repository, recordings and avatar provider the reaper drives, all in memory."""

    rows: dict[str, Row]
    stopped: list[tuple[str, str]] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    sessions_ended: list[str] = field(default_factory=list)

    async def idle_calls(self, cutoff: datetime, *, limit: int) -> list[Row]:
        rows = [r for r in self.rows.values() if r.status == CallStatus.ACTIVE and r.updated_at < cutoff]
        return [Row(**vars(r)) for r in rows][:limit]  # a snapshot, as a query returns

    async def claim_idle_call(self, cid: str, cutoff: datetime, now: datetime) -> bool:
        await asyncio.sleep(0)  # another reaper may run between the read and this write
        row = self.rows[cid]
        if row.status != CallStatus.ACTIVE or row.updated_at >= cutoff:
            return False
        row.updated_at = now
        return True

    async def call_by_conversation(self, cid: str) -> Row:
        return self.rows[cid]

    async def finish_call(self, cid: str, **fields: Any) -> bool:
        row = self.rows[cid]
        if row.status != CallStatus.ACTIVE:
            return False
        row.status, row.end_reason = CallStatus.ENDED, fields["end_reason"]
        return True

    async def end_session(self, user_id: str, session_id: str) -> None:
        self.sessions_ended.append(session_id)

    async def store_chunks(self, call: Row) -> bool:
        self.stored.append(call.conversation_id)
        self.rows[call.conversation_id].audio_key = "calls/c1/client_chunks-1.wav"
        return True

    async def relink(self, call: Row) -> bool:
        return False

    async def discard(self, call_id: str) -> None:
        pass

    async def stop(self, session_id: str, reason: str) -> None:
        self.stopped.append((session_id, reason))

    def runtime(self) -> Any:
        repo = SimpleNamespace(
            idle_calls=self.idle_calls,
            claim_idle_call=self.claim_idle_call,
            call_by_conversation=self.call_by_conversation,
            finish_call=self.finish_call,
            end_session=self.end_session,
        )
        recordings = SimpleNamespace(
            repo=repo,
            settings=SimpleNamespace(call_end_wait_s=0.0),
            live={},
            relink=self.relink,
            store_chunks=self.store_chunks,
            chunks=SimpleNamespace(discard=self.discard),
        )
        return SimpleNamespace(
            settings=SimpleNamespace(call_idle_timeout_s=TIMEOUT_S),
            repo=repo,
            recordings=recordings,
            liveavatar=SimpleNamespace(stop=self.stop),
        )


def avatar_row(touched: datetime) -> Row:
    return Row("avatar_1", "liveavatar", touched, session_id="s1", provider_conversation_id="la-1")


async def test_a_call_idle_for_the_timeout_ends_abandoned_and_not_a_moment_before():
    world = World({"avatar_1": avatar_row(T0)})
    rt = world.runtime()
    assert await idle.reap(rt, T0 + timedelta(seconds=TIMEOUT_S - 1)) == []
    assert world.rows["avatar_1"].status == CallStatus.ACTIVE and world.stopped == []
    assert await idle.reap(rt, T0 + timedelta(seconds=TIMEOUT_S + 1)) == ["avatar_1"]
    row = world.rows["avatar_1"]
    assert (row.status, row.end_reason) == (CallStatus.ENDED, EndReason.ABANDONED)
    assert world.stopped == [("la-1", "USER_DISCONNECTED")]  # the provider session too
    assert world.stored == ["avatar_1"] and world.sessions_ended == ["s1"]


async def test_a_sign_of_life_restarts_the_idle_time():
    world = World({"avatar_1": avatar_row(T0)})
    rt = world.runtime()
    world.rows["avatar_1"].updated_at = T0 + timedelta(seconds=200)  # a keep-alive
    assert await idle.reap(rt, T0 + timedelta(seconds=TIMEOUT_S + 1)) == []
    assert await idle.reap(rt, T0 + timedelta(seconds=TIMEOUT_S + 201)) == ["avatar_1"]


async def test_two_reapers_end_a_call_once():
    world = World({"avatar_1": avatar_row(T0), "direct_1": Row("direct_1", "elevenlabs", T0, id="c2")})
    rt = world.runtime()
    late = T0 + timedelta(hours=1)
    first, second = await asyncio.gather(idle.reap(rt, late), idle.reap(rt, late))
    assert sorted(first + second) == ["avatar_1", "direct_1"]
    assert world.stopped == [("la-1", "USER_DISCONNECTED")] and sorted(world.stored) == [
        "avatar_1",
        "direct_1",
    ]


async def test_the_loop_looks_every_quarter_timeout_on_its_clock_and_a_zero_timeout_never_runs():
    world = World({"avatar_1": avatar_row(T0)})
    rt = world.runtime()
    clock = [T0]
    rounds: list[float] = []

    async def sleep(seconds: float) -> None:
        rounds.append(seconds)
        clock[0] += timedelta(seconds=seconds)
        if world.rows["avatar_1"].status != CallStatus.ACTIVE:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await idle.keep_reaping(rt, clock=lambda: clock[0], sleep=sleep)
    assert rounds == [30.0] * 12  # min(300 / 4, 30): the call ended in the round after 330 s
    rt.settings.call_idle_timeout_s = 0
    await idle.keep_reaping(rt, clock=lambda: clock[0], sleep=sleep)  # returns at once
