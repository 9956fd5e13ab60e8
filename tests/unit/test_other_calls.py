"""Avatar, media-stream and direct calls (talkgate.calls.avatar/media/direct) with fakes: no
servers, no database, no files."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from talkgate.calls import avatar, direct
from talkgate.calls.media import MediaStreamCall, refusal
from talkgate.errors import ErrorCode, ProtocolError, ProviderError, TalkgateError
from talkgate.persistence.models import CallStatus, utcnow
from talkgate.protocol.ends import EndReason
from talkgate.providers.liveavatar import AvatarRoom, AvatarToken
from talkgate.recording.mixer import AGENT, CALLER
from tests.support.call_fakes import FakeLive, FakeRuntime

pytestmark = [pytest.mark.unit, pytest.mark.timeout(5)]


class FakeAvatarProvider:
    def __init__(self) -> None:
        self.stopped: list[tuple[str, str]] = []
        self.start_fails = False
        self.tokens = 0  # provider sessions minted with the deployer's key

    async def create_token(self, avatar_id: str, **_: Any) -> AvatarToken:
        self.tokens += 1
        return AvatarToken("s1", "secret-session-token")

    async def start(self, token: AvatarToken) -> AvatarRoom:
        if self.start_fails:
            raise ProviderError("no room")
        return AvatarRoom(token.session_id, "wss://room", "client-token", 600)

    async def stop(self, session_id: str, reason: str) -> None:
        self.stopped.append((session_id, reason))
        raise ProviderError("already stopped")  # stopping is best effort: never fails the end


class CallRows:
    """get_call / close_conversation over one avatar call row."""

    def __init__(self, status: CallStatus = CallStatus.ACTIVE) -> None:
        self.row = SimpleNamespace(
            conversation_id="avatar_s1",
            provider="liveavatar",
            provider_conversation_id="s1",
            session_id="sess1",
            status=status,
            started_at=utcnow() - timedelta(seconds=3),
        )
        self.closed: dict[str, Any] = {}

    async def get_call(self, user_id: str, conversation_id: str) -> Any:
        return self.row

    async def close_conversation(self, user_id: str, session_id: str, cid: str, **finish: Any) -> None:
        self.closed = {"session_id": session_id, **finish}
        self.row.status = finish["status"]


def avatar_runtime(rows: CallRows | None = None) -> tuple[Any, FakeAvatarProvider]:
    rt: Any = FakeRuntime(liveavatar_avatar_id="av1")
    rt.liveavatar = FakeAvatarProvider()
    if rows is not None:
        rt.repo = rows
    return rt, rt.liveavatar


async def test_stopping_an_avatar_call_closes_its_log_with_the_reason_as_stored() -> None:
    rows = CallRows()
    rt, provider = avatar_runtime(rows)
    row = await avatar.stop(rt, "u1", "avatar_s1", "AGENT_HANG_UP")
    assert provider.stopped == [("s1", "AGENT_HANG_UP")]
    assert rows.closed["end_reason"] is EndReason.AGENT_HANG_UP
    assert str(rows.closed["end_reason"]) == "agent_hang_up"
    assert rows.closed["status"] == CallStatus.ENDED and rows.closed["duration_ms"] >= 3000
    assert row.status == CallStatus.ENDED


async def test_stopping_an_ended_avatar_call_again_changes_nothing() -> None:
    rows = CallRows(CallStatus.ENDED)
    rt, provider = avatar_runtime(rows)
    await avatar.stop(rt, "u1", "avatar_s1", "USER_CLOSED")
    assert provider.stopped == [] and rows.closed == {}


async def test_an_unknown_stop_reason_or_a_non_avatar_id_is_a_bad_request() -> None:
    rt, _ = avatar_runtime(CallRows())
    for cid, reason in (("avatar_s1", "BORED"), ("conv_1", "USER_CLOSED")):
        with pytest.raises(ProtocolError) as refused:
            await avatar.stop(rt, "u1", cid, reason)
        assert refused.value.code is ErrorCode.BAD_REQUEST


NOW = utcnow() - timedelta(hours=3)  # the start of the cap's window
CHOICE = avatar.AvatarChoice(None, None, None, "en", False)


async def test_an_avatar_session_that_cannot_start_is_stopped_and_its_call_log_failed() -> None:
    # Changed with the cap: the call log is opened (and counted) before the provider is asked, so a
    # start that fails leaves a failed call log rather than none.
    rt, provider = avatar_runtime()
    provider.start_fails = True
    with pytest.raises(TalkgateError):
        await avatar.start(rt, "u1", CHOICE, NOW)
    assert provider.stopped == [("s1", "SERVER_ERROR")]
    (cid,) = rt.repo.opened
    assert rt.repo.closed[cid]["status"] == CallStatus.FAILED
    assert rt.repo.closed[cid]["end_reason"] is EndReason.ERROR


async def test_an_avatar_call_opens_its_call_log_under_talkgates_id() -> None:
    rt, _ = avatar_runtime()
    started = await avatar.start(rt, "u1", CHOICE, NOW)
    assert started.conversation_id.startswith("avatar_") and started.avatar_session_id == "s1"
    assert started.room.livekit_client_token == "client-token"
    opened = rt.repo.opened[started.conversation_id]
    assert opened["provider"] == "liveavatar" and opened["provider_conversation_id"] == "s1"


async def test_avatar_starts_over_the_users_cap_ask_the_provider_for_nothing() -> None:
    rt, provider = avatar_runtime()
    rt.settings = rt.settings.model_copy(update={"max_active_calls_per_user": 2})
    for _ in range(2):
        await avatar.start(rt, "u1", CHOICE, NOW)
    for _ in range(3):
        with pytest.raises(TalkgateError) as refused:
            await avatar.start(rt, "u1", CHOICE, NOW)
        assert refused.value.code is ErrorCode.TOO_MANY_CONVERSATIONS
    assert provider.tokens == 2
    await avatar.start(rt, "u2", CHOICE, NOW)  # the cap is per user
    assert provider.tokens == 3


async def test_the_page_may_stop_with_the_reason_as_stored() -> None:
    # The page ends an avatar call with the endReason it shows, ``user_closed``.
    rows = CallRows()
    rt, provider = avatar_runtime(rows)
    await avatar.stop(rt, "u1", "avatar_s1", "user_closed")
    assert provider.stopped == [("s1", "USER_CLOSED")]
    assert rows.closed["end_reason"] is EndReason.USER_CLOSED


def frame(kind: str, cid: str = "c1", pcm: bytes = b"\x01\x00" * 4) -> str:
    return json.dumps({"type": kind, "conversation_id": cid, "audio": base64.b64encode(pcm).decode()})


def media_call() -> tuple[MediaStreamCall, FakeLive]:
    call: Any = SimpleNamespace(conversation_id="c1", provider_conversation_id="p1")
    live = FakeLive("c1")
    return MediaStreamCall(FakeRuntime(), call, live), live  # type: ignore[arg-type]


async def test_media_frames_are_recorded_per_track_until_call_end() -> None:
    media, live = media_call()
    assert await media.take(frame("audio_input"))
    assert await media.take(frame("audio_output", cid="p1"))  # the provider's id for the call too
    assert not await media.take(json.dumps({"type": "call_end", "conversation_id": "c1"}))
    assert [track for track, _ in live.recorder.added] == [CALLER, AGENT]
    assert (media.frames, media.bad) == (3, 0)


async def test_bad_media_frames_are_skipped_and_the_call_goes_on() -> None:
    media, live = media_call()
    assert await media.take("not json")
    assert await media.take(frame("audio_input", cid="someone_else"))
    assert await media.take(frame("audio_input", pcm=b"\x01"))  # odd byte count: not PCM16
    assert await media.take(frame("audio_input"))
    assert (media.frames, media.bad) == (4, 3) and len(live.recorder.added) == 1


def test_a_media_socket_is_refused_for_an_unknown_live_or_ended_call() -> None:
    active = SimpleNamespace(status=CallStatus.ACTIVE)
    ended = SimpleNamespace(status=CallStatus.ENDED)
    assert refusal(None, False) == "unknown call"
    assert refusal(active, True) == "already live"  # type: ignore[arg-type]
    assert refusal(ended, False) == "the call has ended"  # type: ignore[arg-type]
    assert refusal(active, False) is None  # type: ignore[arg-type]


async def test_a_chunk_for_a_call_that_ended_meanwhile_is_discarded() -> None:
    discarded: list[str] = []
    call = SimpleNamespace(id="k1", conversation_id="c1")

    async def add_chunk(_call: Any, pcm: bytes) -> int:
        return len(pcm)

    async def discard(call_id: str) -> None:
        discarded.append(call_id)

    async def call_by_conversation(_cid: str) -> Any:
        return SimpleNamespace(status=CallStatus.ENDED)

    rt: Any = SimpleNamespace(
        recordings=SimpleNamespace(add_chunk=add_chunk, chunks=SimpleNamespace(discard=discard)),
        repo=SimpleNamespace(call_by_conversation=call_by_conversation),
    )
    with pytest.raises(TalkgateError) as refused:
        await direct.add_chunk(rt, call, b"\x00\x00")  # type: ignore[arg-type]
    assert refused.value.code is ErrorCode.CALL_ENDED and discarded == ["k1"]
