"""The relay call's lifecycle (talkgate.calls.relay) with a fake provider, repository and
recordings: start, run, each kind of end, the storage fallback and the deferred call-log save.
No servers; each test runs in milliseconds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from talkgate.calls import call_log
from talkgate.calls.relay import ConversationSlots, RelayCalls, choose_agent
from talkgate.errors import ErrorCode, ProtocolError, ProviderError
from talkgate.persistence import retry
from talkgate.persistence.models import CallStatus
from talkgate.protocol import app_events, convai
from talkgate.protocol.ends import EndReason
from tests.support.call_fakes import FakeLink, FakeRuntime

pytestmark = [pytest.mark.unit, pytest.mark.timeout(5)]


@pytest.fixture(autouse=True)
def no_retry_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "SHORT", (0.0, 0.0))
    monkeypatch.setattr(call_log, "LATER_DELAYS", (0.0,) * 5)


def relay_calls(rt: FakeRuntime, per_user: int = 3) -> RelayCalls:
    return RelayCalls(lambda: rt, ConversationSlots({}, lambda: per_user))  # type: ignore[arg-type, return-value]


async def started(rt: FakeRuntime, calls: RelayCalls, key: str = "sid1", user: str = "u1") -> FakeLink:
    link = FakeLink()
    ack = await calls.start(key, user, {}, link)
    assert ack["ok"] is True, ack
    return link


async def test_a_call_starts_relays_and_ends_when_the_agent_hangs_up() -> None:
    rt = FakeRuntime()
    calls = relay_calls(rt)
    link = await started(rt, calls)
    cid = link.payload("conversation_started")["conversationId"]
    upstream = rt.elevenlabs.upstreams[0]
    assert rt.repo.opened[cid]["agent_id"] == "agent_default"
    upstream.feed(convai.AgentResponse(text="hello", event_id=1))
    upstream.hang_up()
    await link.ended.wait()
    assert link.events() == ["conversation_started", "conversation_message", "conversation_ended"]
    ended = link.payload("conversation_ended")
    assert ended["reason"] == "agent" and ended["conversationId"] == cid
    assert ended["audioUrl"] == rt.recordings.url
    saved = rt.repo.closed[cid]
    assert saved["status"] == CallStatus.ENDED and saved["end_reason"] == EndReason.AGENT
    assert saved["transcript"] == [{"role": "agent", "text": "hello", "eventId": 1}]
    assert not rt.relays and not calls.slots.held


async def test_the_app_ending_the_call_acknowledges_once_it_has_ended() -> None:
    rt = FakeRuntime()
    calls = relay_calls(rt)
    link = await started(rt, calls)
    cid = link.payload("conversation_started")["conversationId"]
    ack = await calls.end("sid1")
    assert ack == app_events.ok(sessionId=f"sess_{cid}", conversationId=cid)
    await link.ended.wait()
    assert link.payload("conversation_ended")["reason"] == "client"
    assert rt.repo.closed[cid]["end_reason"] == EndReason.CLIENT


async def test_a_dropped_socket_ends_the_call_as_disconnected() -> None:
    rt = FakeRuntime()
    calls = relay_calls(rt)
    link = await started(rt, calls)
    cid = link.payload("conversation_started")["conversationId"]
    await calls.stop_and_wait("sid1", EndReason.DISCONNECTED)
    assert link.ended.is_set()
    assert rt.repo.closed[cid]["end_reason"] == "disconnected"


async def test_a_provider_that_refuses_the_start_is_a_failed_ack_and_an_ended_event() -> None:
    rt = FakeRuntime()
    rt.elevenlabs.refuse = ProviderError("no", code=ErrorCode.PROVIDER_ERROR)
    calls = relay_calls(rt)
    link = FakeLink()
    ack = await calls.start("sid1", "u1", {}, link)
    assert ack["ok"] is False and ack["error"]["code"] == "provider_error"
    assert link.events() == ["conversation_error", "conversation_ended"]
    assert link.payload("conversation_error")["fatal"] is True
    assert link.payload("conversation_ended")["reason"] == "error"
    assert not rt.repo.opened and not calls.slots.held


async def test_a_provider_error_close_fails_the_call_log() -> None:
    rt = FakeRuntime()
    calls = relay_calls(rt)
    link = await started(rt, calls)
    cid = link.payload("conversation_started")["conversationId"]
    rt.elevenlabs.upstreams[0].hang_up(code=convai.CloseCode.OPERATIONAL)
    await link.ended.wait()
    assert link.events()[-2:] == ["conversation_error", "conversation_ended"]
    assert rt.repo.closed[cid]["status"] == CallStatus.FAILED
    assert rt.repo.closed[cid]["end_reason"] == EndReason.ERROR


async def test_the_call_log_is_written_while_the_provider_opens_its_socket() -> None:
    """The call log is keyed by talkgate's own id, so it does not wait for the provider's: it is
    written while the provider's socket opens, and the provider's id, which only that socket
    gives, is added once the provider said it (never before, never from anything else)."""
    rt = FakeRuntime()
    rt.elevenlabs.hold = asyncio.Event()
    calls = relay_calls(rt)
    link = FakeLink()
    start = asyncio.ensure_future(calls.start("sid1", "u1", {}, link))
    await rt.elevenlabs.asked.wait()
    await rt.repo.written.wait()  # the rows' own task
    ((cid, row),) = rt.repo.opened.items()
    assert cid.startswith("relay_") and "provider_conversation_id" not in row and not start.done()
    rt.elevenlabs.hold.set()
    ack = await start
    assert ack["ok"] is True and ack["conversationId"] == cid and ack["sessionId"] == f"sess_{cid}"
    await asyncio.gather(*rt.tasks - {calls.tasks["sid1"]})  # the provider id's write
    assert rt.repo.opened[cid]["provider_conversation_id"] == "conv_1"
    await calls.end("sid1")
    await link.ended.wait()
    # The end writes it too (only where it is unset): a database away at the start loses nothing.
    assert rt.repo.closed[cid]["provider_conversation_id"] == "conv_1"
    assert link.payload("conversation_ended")["conversationId"] == cid


async def test_a_start_the_provider_refuses_after_its_call_log_was_written_leaves_none() -> None:
    rt = FakeRuntime()
    rt.elevenlabs.hold = asyncio.Event()
    rt.elevenlabs.refuse = ProviderError("no", code=ErrorCode.PROVIDER_ERROR)
    calls = relay_calls(rt)
    link = FakeLink()
    start = asyncio.ensure_future(calls.start("sid1", "u1", {}, link))
    await rt.repo.written.wait()
    rt.elevenlabs.hold.set()
    ack = await start
    assert ack["ok"] is False and not rt.repo.opened and not calls.slots.held
    assert link.events() == ["conversation_error", "conversation_ended"]


async def test_a_start_cancelled_while_the_provider_opens_leaves_no_call_log() -> None:
    """A socket that goes away mid-start: the rows written meanwhile are removed."""
    rt = FakeRuntime()
    rt.elevenlabs.hold = asyncio.Event()
    calls = relay_calls(rt)
    start = asyncio.ensure_future(calls.start("sid1", "u1", {}, FakeLink()))
    await rt.repo.written.wait()
    start.cancel()
    with pytest.raises(asyncio.CancelledError):
        await start
    await asyncio.gather(*rt.tasks)
    assert not rt.repo.opened and not calls.slots.held and not rt.relays


async def test_the_per_user_limit_counts_live_calls_and_frees_them_at_the_end() -> None:
    rt = FakeRuntime()
    calls = relay_calls(rt, per_user=1)
    link = await started(rt, calls, "sid1")
    with pytest.raises(ProtocolError) as refused:
        await calls.start("sid2", "u1", {}, FakeLink())
    assert refused.value.code is ErrorCode.TOO_MANY_CONVERSATIONS
    await started(rt, calls, "sid3", user="u2")  # another user is not counted
    rt.elevenlabs.upstreams[0].hang_up()
    await link.ended.wait()
    await started(rt, calls, "sid2")


async def test_a_second_start_on_one_socket_is_refused() -> None:
    rt = FakeRuntime()
    calls = relay_calls(rt)
    await started(rt, calls)
    with pytest.raises(ProtocolError) as refused:
        await calls.start("sid1", "u1", {}, FakeLink())
    assert refused.value.code is ErrorCode.CONVERSATION_ACTIVE
    assert calls.slots.held == {"u1": 1}


async def test_commands_without_a_call_say_so() -> None:
    calls = relay_calls(FakeRuntime())
    with pytest.raises(ProtocolError) as refused:
        await calls.end("nobody")
    assert refused.value.code is ErrorCode.NO_CONVERSATION


async def test_storage_unavailable_at_the_start_keeps_the_call_and_says_so() -> None:
    rt = FakeRuntime()
    rt.recordings.broken = True
    calls = relay_calls(rt)
    link = await started(rt, calls)
    cid = link.payload("conversation_started")["conversationId"]
    assert link.events() == ["conversation_error", "conversation_started"]
    assert link.payload("conversation_error")["code"] == "storage_error"
    assert rt.repo.recording_marks == [(cid, None)]
    await calls.end("sid1")
    await link.ended.wait()
    assert link.payload("conversation_ended")["audioUrl"] is None
    assert rt.recordings.finished == [] and rt.recordings.relinked == []


async def test_a_recording_not_linked_at_the_end_is_relinked_after_the_call_log_is_saved() -> None:
    rt = FakeRuntime()
    rt.recordings.url = None  # stored while the database was away: not linked yet
    calls = relay_calls(rt)
    link = await started(rt, calls)
    cid = link.payload("conversation_started")["conversationId"]
    await calls.end("sid1")
    await link.ended.wait()
    assert rt.recordings.relinked == [cid]


async def test_a_brief_database_outage_at_the_end_is_retried_at_once() -> None:
    rt = FakeRuntime()
    rt.repo.away = 2  # fewer than the short retries
    calls = relay_calls(rt)
    link = await started(rt, calls)
    cid = link.payload("conversation_started")["conversationId"]
    await calls.end("sid1")
    await link.ended.wait()
    assert "conversation_error" not in link.events()
    assert rt.repo.close_attempts == 3 and cid in rt.repo.closed


async def test_a_long_database_outage_is_reported_and_the_call_log_saved_later() -> None:
    rt = FakeRuntime()
    rt.repo.away = 5  # more than the short retries: the deferred save takes over
    calls = relay_calls(rt)
    link = await started(rt, calls)
    cid = link.payload("conversation_started")["conversationId"]
    await calls.end("sid1")
    await link.ended.wait()
    assert link.events()[-2:] == ["conversation_error", "conversation_ended"]
    assert link.payload("conversation_error")["code"] == "database_unavailable"
    assert cid not in rt.repo.closed
    await asyncio.wait_for(rt.repo.back.wait(), 5)
    assert rt.repo.closed[cid]["end_reason"] == EndReason.CLIENT
    await asyncio.gather(*rt.tasks)
    assert rt.recordings.relinked == [cid]


def test_an_app_may_name_only_one_of_the_servers_agents() -> None:
    rt = FakeRuntime(elevenlabs_agent_id_female="agent_f")
    named = app_events.ConversationStart.parse({"agentId": "agent_f"})
    assert choose_agent(rt.settings, named) == "agent_f"
    assert choose_agent(rt.settings, app_events.ConversationStart.parse({})) == "agent_default"
    with pytest.raises(ProtocolError) as refused:
        choose_agent(rt.settings, app_events.ConversationStart.parse({"agentId": "agent_other"}))
    assert refused.value.code is ErrorCode.UNKNOWN_AGENT


def test_end_reasons_keep_the_words_stored_and_sent_today() -> None:
    stored: dict[str, Any] = {r.name: r.value for r in EndReason}
    assert stored["CLIENT"] == "client" and stored["AGENT"] == "agent" and stored["ERROR"] == "error"
    assert EndReason.from_avatar("USER_CLOSED") is EndReason.USER_CLOSED
