"""The push-to-talk relay session alone: a fake upstream conversation, a fake app and a clock the
test moves by hand. No servers, no sockets; each test takes milliseconds."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from talkgate.errors import ErrorCode, ProviderError, TalkgateError
from talkgate.protocol import convai
from talkgate.protocol.audio import PCM_16000, AudioFormat
from talkgate.protocol.dialect import Dialect, TurnEndMode
from talkgate.providers.base import Closed
from talkgate.relay.session import RelaySession

pytestmark = [pytest.mark.unit, pytest.mark.timeout(5)]

CALLER_PCM = b"\x01\x00\x02\x00" * 800  # 200 ms of 16 kHz PCM16


class FakeClock:
    """Time stands still until the test calls ``advance``; ``sleep`` wakes when it has passed."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now
        self.sleeps = 0
        self._moved = asyncio.Condition()

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps += 1
        until = self.now + delay
        async with self._moved:
            await self._moved.wait_for(lambda: self.now >= until)

    async def advance(self, seconds: float) -> None:
        self.now += seconds
        async with self._moved:
            self._moved.notify_all()
        for _ in range(5):  # let the woken tasks run their step
            await asyncio.sleep(0)


class FakeUpstream:
    """An upstream conversation: records what is sent; the test feeds provider events and closes it."""

    def __init__(self, fmt: AudioFormat = PCM_16000) -> None:
        self.conversation_id = "conv_fake"
        self.input_format = fmt
        self.output_format = fmt
        self.sent: list[convai.ClientEvent] = []
        self._inbox: asyncio.Queue[convai.ServerEvent | Closed] = asyncio.Queue()
        self._closed: Closed | None = None

    async def send(self, event: convai.ClientEvent) -> None:
        if self._closed is not None:
            raise ProviderError("closed", code=ErrorCode.PROVIDER_CLOSED)
        self.sent.append(event)

    def feed(self, *events: convai.ServerEvent) -> None:
        for event in events:
            self._inbox.put_nowait(event)

    def provider_closes(self, code: int, reason: str = "") -> None:
        last = self.sent[-1].type if self.sent else None
        self._inbox.put_nowait(Closed(code, reason, last))

    async def events(self) -> AsyncIterator[convai.ServerEvent]:
        while True:
            item = await self._inbox.get()
            if isinstance(item, Closed):
                self._closed = self._closed or item
                return
            yield item

    async def close(self) -> None:
        if self._closed is None:
            self._closed = Closed(convai.CloseCode.NORMAL, "")
            self._inbox.put_nowait(self._closed)

    @property
    def closed(self) -> Closed | None:
        return self._closed

    def kinds(self) -> list[str]:
        return [event.type for event in self.sent]


class FakeTap:
    def __init__(self) -> None:
        self.caller_audio: list[bytes] = []
        self.agent_audio: list[str] = []

    async def caller(self, pcm: bytes, fmt: AudioFormat) -> None:
        self.caller_audio.append(pcm)

    async def agent(self, audio_b64: str, fmt: AudioFormat) -> None:
        self.agent_audio.append(audio_b64)


class App:
    """What the app's socket received, in order, and how many packets it has not read yet."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.backlog = 0

    async def emit(self, event: str, payload: dict[str, Any]) -> None:
        self.received.append((event, payload))

    def events(self, name: str) -> list[dict[str, Any]]:
        return [payload for event, payload in self.received if event == name]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def relay(
    clock: FakeClock,
    *,
    upstream: FakeUpstream | None = None,
    app: App | None = None,
    tap: FakeTap | None = None,
    dialect: Dialect | None = None,
    **options: Any,
) -> tuple[RelaySession, FakeUpstream, App]:
    upstream = upstream or FakeUpstream()
    app = app or App()
    session = RelaySession(
        session_id="sess_1",
        upstream=upstream,
        dialect=dialect or Dialect(),
        emit=app.emit,
        app_backlog=lambda: app.backlog,
        tap=tap,
        clock=clock,
        sleep=clock.sleep,
        **options,
    )
    return session, upstream, app


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def test_a_turn_goes_upstream_in_order_and_its_audio_is_tapped(clock):
    tap = FakeTap()
    session, upstream, _ = relay(clock, tap=tap)
    assert await session.start_turn() == 1
    await session.audio(CALLER_PCM)
    await session.audio(CALLER_PCM, b64(CALLER_PCM))
    ended = await session.end_turn()
    assert ended.turn == 1
    assert upstream.kinds() == [
        "user_message_begin",
        "user_audio_chunk",
        "user_audio_chunk",
        "end_user_audio",
    ]
    assert upstream.sent[1] == convai.UserAudioChunk(b64(CALLER_PCM))
    assert (session.stats.chunks_up, session.stats.bytes_up) == (2, 2 * len(CALLER_PCM))
    assert tap.caller_audio == [CALLER_PCM, CALLER_PCM]


async def test_the_silence_dialect_ends_a_turn_with_a_silence_tail_instead_of_a_signal(clock):
    session, upstream, _ = relay(clock, dialect=Dialect(turn_end=TurnEndMode.SILENCE, silence_ms=300))
    await session.start_turn()
    await session.audio(CALLER_PCM)
    await session.end_turn()
    assert upstream.kinds() == ["user_audio_chunk"] * 4  # the audio, then 3 of 100 ms of silence
    silence = base64.b64decode(upstream.sent[-1].audio_base_64)  # type: ignore[union-attr]
    assert silence == bytes(3200)


async def test_audio_outside_a_turn_and_odd_pcm_are_refused_before_anything_goes_upstream(clock):
    session, upstream, _ = relay(clock)
    with pytest.raises(TalkgateError) as outside:
        await session.audio(CALLER_PCM)
    assert outside.value.code == ErrorCode.NOT_RECORDING
    await session.start_turn()
    with pytest.raises(TalkgateError) as odd:
        await session.audio(b"\x01\x02\x03")
    assert odd.value.code == ErrorCode.BAD_AUDIO
    assert upstream.kinds() == ["user_message_begin"]


async def test_agent_audio_reaches_the_app_and_audio_from_before_an_interruption_is_dropped(clock):
    tap = FakeTap()
    session, upstream, app = relay(clock, tap=tap)
    run = asyncio.ensure_future(session.run())
    upstream.feed(
        convai.AgentAudio(b64(b"\x00\x01" * 4), 5),
        convai.Interruption(7),
        convai.AgentAudio(b64(b"\x00\x02" * 4), 6),  # the interrupted reply: dropped
        convai.AgentAudio(b64(b"\x00\x03" * 4), 7),  # the new reply may share the interruption's id
    )
    upstream.provider_closes(convai.CloseCode.NORMAL)
    await run
    audio = app.events("agent_audio")
    assert [(a["eventId"], a["format"]) for a in audio] == [(5, "pcm_16000"), (7, "pcm_16000")]
    assert audio[1]["audio"] == b64(b"\x00\x03" * 4)
    assert session.stats.audio_dropped_interrupted == 1
    assert len(tap.agent_audio) == 2  # what was dropped is not recorded either
    assert [event for event, _ in app.received] == ["agent_audio", "conversation_message", "agent_audio"]
    assert app.events("conversation_message")[0]["type"] == "interruption"
    assert session.end_reason == "agent"  # the provider ended it normally: no error for the app


async def test_a_slow_app_loses_agent_audio_not_transcripts_and_is_told_once(clock):
    tap = FakeTap()
    session, upstream, app = relay(clock, tap=tap, max_app_backlog=3)
    app.backlog = 4
    run = asyncio.ensure_future(session.run())
    upstream.feed(
        convai.AgentAudio(b64(b"\x00\x01"), 1),
        convai.AgentResponse("hello", 1),
        convai.AgentAudio(b64(b"\x00\x01"), 1),
    )
    await settle()
    app.backlog = 0
    upstream.feed(convai.AgentAudio(b64(b"\x00\x01"), 2))
    upstream.provider_closes(convai.CloseCode.NORMAL)
    await run
    assert [event for event, _ in app.received] == [
        "conversation_error",
        "conversation_message",
        "agent_audio",
    ]
    error = app.events("conversation_error")[0]
    assert (error["code"], error["fatal"]) == ("slow_consumer", False)
    assert (session.stats.audio_dropped_slow_app, session.stats.audio_down) == (2, 1)
    assert len(tap.agent_audio) == 3  # the recording hears everything


async def test_transcripts_and_corrections_are_kept_for_the_call_log(clock):
    session, upstream, app = relay(clock)
    run = asyncio.ensure_future(session.run())
    upstream.feed(
        convai.UserTranscript("hi there", 1),
        convai.AgentResponse("helo", 2),
        convai.AgentResponseCorrection("helo", "hello", 2),
    )
    upstream.provider_closes(convai.CloseCode.NORMAL)
    await run
    assert session.stats.transcript == [
        {"role": "user", "text": "hi there", "eventId": 1},
        {"role": "agent", "text": "hello", "eventId": 2},
    ]
    assert [(m["type"], m["text"]) for m in app.events("conversation_message")] == [
        ("user_transcript", "hi there"),
        ("agent_response", "helo"),
        ("agent_response_correction", "hello"),
    ]


async def test_turn_latencies_and_duration_follow_the_clock(clock):
    session, upstream, _ = relay(clock)
    run = asyncio.ensure_future(session.run())
    await session.start_turn()
    await session.audio(CALLER_PCM)
    await clock.advance(2.0)
    await session.end_turn()
    await clock.advance(0.25)
    upstream.feed(convai.UserTranscript("hi", 1))
    await settle()
    await clock.advance(0.35)
    upstream.feed(convai.AgentAudio(b64(b"\x00\x01"), 2), convai.AgentAudio(b64(b"\x00\x01"), 2))
    await settle()
    await session.stop("client")
    await run
    (turn,) = session.stats.turns
    assert (turn.turn, turn.transcript_ms, turn.first_audio_ms) == (1, 250.0, 600.0)
    assert session.duration_ms == 2600
    assert session.end_reason == "client"


async def test_a_quiet_conversation_is_kept_alive_but_not_during_a_turn(clock):
    session, upstream, _ = relay(clock, keepalive_interval_s=15.0)
    run = asyncio.ensure_future(session.run())
    await settle()
    await clock.advance(14.75)
    assert upstream.kinds() == []
    await clock.advance(0.25)
    assert upstream.kinds() == ["text_keepalive"]
    await session.start_turn()  # something was sent: the next keep-alive is 15 s after it
    await clock.advance(15.0)
    assert upstream.kinds() == ["text_keepalive", "user_message_begin"]  # talking: none
    await session.end_turn()
    await clock.advance(15.0)
    assert upstream.kinds() == ["text_keepalive", "user_message_begin", "end_user_audio", "text_keepalive"]
    await session.stop("client")
    await run


async def test_a_turn_held_without_audio_does_not_wake_the_keepalive_timer_again_and_again(clock):
    session, upstream, _ = relay(clock, keepalive_interval_s=15.0)
    run = asyncio.ensure_future(session.run())
    await session.start_turn()
    await settle()
    for _ in range(4):  # a minute with the button held and no audio
        await clock.advance(15.0)
    assert clock.sleeps <= 10  # a bounded few per interval (it spun before, never yielding to the loop)
    assert upstream.kinds() == ["user_message_begin"]
    await session.stop("client")
    await run


async def test_ending_from_the_app_closes_upstream_and_refuses_later_commands(clock):
    session, upstream, app = relay(clock)
    run = asyncio.ensure_future(session.run())
    await session.stop("client")
    await run
    assert upstream.closed == Closed(convai.CloseCode.NORMAL, "")
    assert (session.end_reason, session.ended.is_set(), app.received) == ("client", True, [])
    with pytest.raises(ProviderError) as refused:
        await session.start_turn()
    assert refused.value.code == ErrorCode.NO_CONVERSATION


async def test_a_refused_seed_dialect_message_names_the_setting_to_change(clock):
    session, upstream, app = relay(clock)
    run = asyncio.ensure_future(session.run())
    await session.start_turn()
    upstream.provider_closes(convai.CloseCode.POLICY, "invalid message")
    await run
    (error,) = app.events("conversation_error")
    assert (error["code"], error["fatal"]) == ("provider_rejected_dialect", True)
    assert "TALKGATE_PTT_TURN_END=silence" in error["message"]
    assert session.end_reason == "error"


@pytest.mark.parametrize(
    ("error_type", "code"), [("conversation_timeout", "provider_timeout"), ("llm_failed", "provider_error")]
)
async def test_a_provider_error_frame_then_close_becomes_the_apps_error(clock, error_type, code):
    session, upstream, app = relay(clock)
    run = asyncio.ensure_future(session.run())
    upstream.feed(convai.ServerError(1002, error_type, "it went wrong"))
    upstream.provider_closes(convai.CloseCode.OPERATIONAL)
    await run
    (error,) = app.events("conversation_error")
    assert error["code"] == code and f"{error_type}: it went wrong" in error["message"]
    assert session.end_reason == "error"


async def test_an_upstream_that_closed_does_not_fail_the_apps_command(clock):
    session, upstream, app = relay(clock)
    run = asyncio.ensure_future(session.run())
    await session.start_turn()
    upstream.provider_closes(convai.CloseCode.INTERNAL, "gone")
    await run
    assert app.events("conversation_error")[0]["code"] == "provider_closed"
    with pytest.raises(ProviderError):  # ended: the app learns so, no send is attempted
        await session.audio(CALLER_PCM)
