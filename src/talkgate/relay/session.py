"""One app socket ↔ one upstream conversation.

A ``RelaySession`` runs a TaskGroup with the provider → app reader and a keep-alive timer. App
commands (turn start, audio, turn end, text) arrive in order from the Socket.IO handlers, which
run one at a time per socket, and go upstream from the handler itself: the socket's handler
sequence is the app → provider direction, so order is kept without a queue and a task switch per
chunk (which cost the relay a fifth of its CPU under load). Backpressure policy:

- app → provider: when the provider's socket buffer is above its high-water mark, the send (and
  so the app's handler) waits, so a fast app is slowed down at its own socket rather than
  buffered without bound.
- provider → app: when the app's outgoing packet queue holds more than ``max_app_backlog``
  packets, agent audio is dropped (transcripts and other events still go), counted, and the app is
  told once with a non-fatal ``slow_consumer`` error. The recording tap sees every chunk anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from talkgate import metrics
from talkgate.codecs import StreamDecoder
from talkgate.errors import AudioError, ErrorCode, ProviderError, TalkgateError
from talkgate.protocol import app_events, convai
from talkgate.protocol.app_events import InputCodec
from talkgate.protocol.audio import AudioFormat, Encoding, b64encode_audio, pcm16_to_ulaw
from talkgate.protocol.dialect import Dialect, rejection_hint
from talkgate.protocol.ends import EndReason
from talkgate.protocol.ptt import PushToTalk, TurnEnded
from talkgate.providers.base import Closed, UpstreamConversation

log = logging.getLogger("talkgate.relay")

DECODED_CHUNK = 3200  # 100 ms of 16 kHz PCM16: the size the provider's own clients send
MAX_APP_BACKLOG = 200


class Emit(Protocol):
    def __call__(self, event: str, payload: dict[str, Any]) -> Awaitable[None]: ...


class Tap(Protocol):
    """Where the relay's audio goes to be recorded (both tracks, in their wire formats)."""

    async def caller(self, pcm: bytes, fmt: AudioFormat) -> None: ...

    async def agent(self, audio_b64: str, fmt: AudioFormat) -> None: ...


TURN_STAGES = {"transcript_ms": "first_transcript", "first_audio_ms": "first_audio"}


@dataclass(slots=True)
class TurnTiming:
    """Release → first transcript → first agent audio, per push-to-talk turn (milliseconds)."""

    turn: int
    released_at: float
    transcript_ms: float | None = None
    first_audio_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"turn": self.turn, "transcriptMs": self.transcript_ms, "firstAudioMs": self.first_audio_ms}


@dataclass(slots=True)
class SessionStats:
    chunks_up: int = 0
    bytes_up: int = 0
    audio_down: int = 0
    audio_dropped_interrupted: int = 0
    audio_dropped_slow_app: int = 0
    turns: list[TurnTiming] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)


class RelaySession:
    def __init__(
        self,
        *,
        session_id: str,
        upstream: UpstreamConversation,
        dialect: Dialect,
        conversation_id: str | None = None,
        emit: Emit,
        app_backlog: Callable[[], int] = lambda: 0,
        tap: Tap | None = None,
        input_codec: InputCodec = InputCodec.PCM_16000,
        keepalive_interval_s: float = 15.0,
        max_app_backlog: int = MAX_APP_BACKLOG,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``clock`` and ``sleep`` time the keep-alive, the turn latencies and the duration (a
        test passes a fake pair; ``clock`` must agree with what ``sleep`` waits for)."""
        self.session_id = session_id
        # talkgate's id for the call (the provider's own, ``upstream.conversation_id``, by default).
        self.conversation_id = conversation_id or upstream.conversation_id
        self.upstream = upstream
        self.dialect = dialect
        self.ptt = PushToTalk()
        self.stats = SessionStats()
        self._emit = emit
        self._app_backlog = app_backlog
        self._tap = tap
        self.input_codec = input_codec
        self._decoder: StreamDecoder | None = None
        self._keepalive_interval = keepalive_interval_s
        self._max_app_backlog = max_app_backlog
        self._clock = clock
        self._sleep = sleep
        self._last_sent = clock()
        self._last_interrupt = 0
        self._slow_app_notified = False
        self._provider_error: convai.ServerError | None = None
        self.started_at = time.time()
        self._t0 = clock()
        self.end_reason: EndReason | None = None
        self.ended = asyncio.Event()
        self.app_format = AudioFormat(Encoding.PCM, upstream.input_format.sample_rate)

    @property
    def duration_ms(self) -> int:
        return int((self._clock() - self._t0) * 1000)

    def started_payload(self) -> dict[str, Any]:
        return {
            "sessionId": self.session_id,
            "conversationId": self.conversation_id,
            # What the app must send (PCM16 at the provider's rate) and what it will receive.
            "inputFormat": self.input_codec.value if self.input_codec.compressed else self.app_format.name,
            "outputFormat": self.upstream.output_format.name,
        }

    # --- app commands (called in order by the socket's handlers) -----------------------------

    def _check_open(self) -> None:
        if self.ended.is_set() or self.end_reason is not None:
            raise ProviderError("the conversation has ended", code=ErrorCode.NO_CONVERSATION)

    async def _send(self, event: convai.ClientEvent) -> None:
        try:
            await self.upstream.send(event)
        except ProviderError:
            return  # the reader sees the close, ends the session and tells the app why
        self._last_sent = self._clock()

    async def start_turn(self) -> int:
        self._check_open()
        started = self.ptt.start()
        if self.input_codec.compressed:
            # Each turn is a stream of its own (MediaRecorder starts a new file on every press).
            self._decoder = StreamDecoder(self.input_codec, self.upstream.input_format.sample_rate)
        for event in self.dialect.upstream(started, self.upstream.input_format):
            await self._send(event)
        return started.turn

    async def audio(self, data: bytes, b64: str | None = None) -> None:
        self._check_open()
        # not_recording outside a turn; empty_audio; bad_audio (odd bytes of PCM)
        self.ptt.audio(data, pcm16=self._decoder is None)
        if self._decoder is None:
            await self._forward(data, b64)
            return
        self._decoder.feed(data)  # bad_audio once the stream turns out to be broken
        if pcm := self._decoder.take():
            await self._forward(pcm, None)

    async def _forward(self, data: bytes, b64: str | None) -> None:
        if self._tap is not None:
            await self._tap.caller(data, self.app_format)
        fmt = self.upstream.input_format
        if fmt.encoding is Encoding.ULAW:
            b64 = b64encode_audio(pcm16_to_ulaw(data))
        elif b64 is None:
            b64 = b64encode_audio(data)
        self.stats.chunks_up += 1
        self.stats.bytes_up += len(data)
        await self._send(convai.UserAudioChunk(b64))

    async def end_turn(self) -> TurnEnded:
        self._check_open()
        ended = self.ptt.end()
        failure: AudioError | None = None
        if self._decoder is not None:
            decoder, self._decoder = self._decoder, None
            try:
                pcm = await asyncio.to_thread(decoder.finish)
            except AudioError as exc:
                failure, pcm = exc, b""  # the turn still ends upstream, then the app hears why
            for i in range(0, len(pcm), DECODED_CHUNK):
                await self._forward(pcm[i : i + DECODED_CHUNK], None)
        self.stats.turns.append(TurnTiming(ended.turn, self._clock()))
        metrics.TURNS.inc()
        # The signal dialect: the end goes out at once, right behind the turn's audio; no silence, no delay.
        for event in self.dialect.upstream(ended, self.upstream.input_format):
            await self._send(event)
        if failure is not None:
            raise failure
        return ended

    async def keepalive(self) -> None:
        self._check_open()
        await self._send(self.dialect.keepalive_event())

    async def message(self, event: convai.ClientEvent) -> None:
        self._check_open()
        await self._send(event)

    async def stop(self, reason: EndReason) -> None:
        """End from the app's side (``conversation_end`` or a dropped socket)."""
        if self.end_reason is None:
            self.end_reason = reason
        if self._decoder is not None:
            self._decoder.abort()
            self._decoder = None
        await self.upstream.close()

    # --- the tasks ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Relay until either side ends; then tell the app why."""
        try:
            async with asyncio.TaskGroup() as tg:
                timer = tg.create_task(self._keepalive_timer())
                await self._read()
                timer.cancel()
        except Exception:
            log.exception("conversation %s: relay failed", self.conversation_id)
            self.end_reason = self.end_reason or EndReason.ERROR
            await self.upstream.close()
        finally:
            await self._finish()

    async def _keepalive_timer(self) -> None:
        while True:
            due = self._last_sent + self._keepalive_interval
            await self._sleep(max(0.0, due - self._clock()))
            if self._clock() - self._last_sent < self._keepalive_interval:
                continue  # something went upstream meanwhile
            if self.ptt.talking:
                # A turn held without audio: look again an interval later (its end is sent
                # upstream anyway) rather than wake at once, again and again, until it ends.
                await self._sleep(self._keepalive_interval)
                continue
            await self._send(self.dialect.keepalive_event())
            self._last_sent = self._clock()  # also when the send failed: no busy loop

    async def _read(self) -> None:
        out_fmt = self.upstream.output_format.name
        async for event in self.upstream.events():
            if isinstance(event, convai.AgentAudio):
                # Drop audio older than the last interruption; the reply may share its id.
                if event.event_id < self._last_interrupt:
                    self.stats.audio_dropped_interrupted += 1
                    continue
                if self._tap is not None:
                    await self._tap.agent(event.audio_base_64, self.upstream.output_format)
                self._mark_turn("first_audio_ms")
                if self._app_backlog() > self._max_app_backlog:
                    await self._slow_app()
                    continue
                self.stats.audio_down += 1
                await self._emit(
                    app_events.ServerEventName.AGENT_AUDIO,
                    {"audio": event.audio_base_64, "eventId": event.event_id, "format": out_fmt},
                )
                continue
            if isinstance(event, convai.ServerError):
                self._provider_error = event
                continue
            if isinstance(event, convai.Interruption):
                self._last_interrupt = max(self._last_interrupt, event.event_id)
            elif isinstance(event, convai.UserTranscript):
                self._mark_turn("transcript_ms")
                self.stats.transcript.append({"role": "user", "text": event.text, "eventId": event.event_id})
            elif isinstance(event, convai.AgentResponse):
                self.stats.transcript.append({"role": "agent", "text": event.text, "eventId": event.event_id})
            elif isinstance(event, convai.AgentResponseCorrection):
                self._correct(event)
            payload = app_events.provider_message(event)
            if payload is not None:
                await self._emit(app_events.ServerEventName.CONVERSATION_MESSAGE, payload)

    def _mark_turn(self, attr: str) -> None:
        if self.stats.turns and getattr(self.stats.turns[-1], attr) is None:
            turn = self.stats.turns[-1]
            elapsed = self._clock() - turn.released_at
            setattr(turn, attr, round(elapsed * 1000, 1))
            metrics.TURN_LATENCY_SECONDS.labels(TURN_STAGES[attr]).observe(elapsed)

    def _correct(self, event: convai.AgentResponseCorrection) -> None:
        for entry in reversed(self.stats.transcript):
            if entry["role"] == "agent" and entry["eventId"] == event.event_id:
                entry["text"] = event.corrected
                return

    async def _slow_app(self) -> None:
        self.stats.audio_dropped_slow_app += 1
        if not self._slow_app_notified:
            self._slow_app_notified = True
            log.warning("conversation %s: app is not keeping up; dropping agent audio", self.conversation_id)
            await self._emit(
                app_events.ServerEventName.CONVERSATION_ERROR,
                {
                    "code": ErrorCode.SLOW_CONSUMER.value,
                    "message": "the app is not reading fast enough; agent audio is being dropped",
                    "fatal": False,
                },
            )

    def _closing_error(self, closed: Closed | None) -> TalkgateError | None:
        if self.end_reason is not None:
            return None
        if closed is None or closed.normal:
            return None
        detail = f"(close {closed.code}{': ' + closed.reason if closed.reason else ''})"
        if self._provider_error is not None:
            detail = f"{self._provider_error.error_type}: {self._provider_error.message} {detail}"
        if closed.code == convai.CloseCode.POLICY and (hint := rejection_hint(closed.last_sent_type)):
            return ProviderError(f"{hint} {detail}", code=ErrorCode.PROVIDER_REJECTED_DIALECT)
        if closed.code == convai.CloseCode.OPERATIONAL and self._provider_error is not None:
            code = (
                ErrorCode.PROVIDER_TIMEOUT
                if "timeout" in self._provider_error.error_type
                else ErrorCode.PROVIDER_ERROR
            )
            return ProviderError(f"the provider ended the conversation: {detail}", code=code)
        return ProviderError(f"the provider closed the conversation {detail}", code=ErrorCode.PROVIDER_CLOSED)

    async def _finish(self) -> None:
        closed = self.upstream.closed
        error = self._closing_error(closed)
        if self.end_reason is None:
            self.end_reason = EndReason.ERROR if error else EndReason.AGENT
        if error is not None:
            log.warning("conversation %s: %s", self.conversation_id, error.message)
            await self._emit(
                app_events.ServerEventName.CONVERSATION_ERROR, app_events.error_payload(error, fatal=True)
            )
        self.ended.set()
