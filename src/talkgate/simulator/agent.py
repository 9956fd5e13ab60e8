"""The simulator's scripted, deterministic echo agent: pure logic with an explicit clock.

It plays the ElevenLabs side of one conversation. The socket handler feeds it client frames and
clock ticks and sends what it returns. When a user turn ends it answers with ``user_transcript``
(a description of what it heard), ``agent_response`` and ``audio`` frames that play the user's own
turn back. A turn ends either on the signal dialect's ``end_user_audio`` (after ``user_message_begin``) or by
silence after speech, as the real service's VAD does, so official clients that stream continuously
work too. Three behaviours towards messages outside the published spec: honour the signal
dialect's (the default), ``strict`` (close 1008, as a provider that enforces the spec), or
``ignore_unknown`` (drop them silently, as a provider that skips what it does not know: turns then
end only by VAD).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from talkgate.errors import AudioError, ProtocolError
from talkgate.protocol import convai
from talkgate.protocol.audio import (
    PCM_16000,
    AudioFormat,
    Encoding,
    b64decode_audio,
    b64encode_audio,
    convert,
    dbfs,
    rms,
    to_pcm16,
    tone,
)
from talkgate.protocol.convai import CloseCode


@dataclass(frozen=True, slots=True)
class AgentConfig:
    input_format: AudioFormat = PCM_16000
    output_format: AudioFormat = PCM_16000
    strict: bool = False  # an unknown message closes the socket (1008)
    ignore_unknown: bool = False  # an unknown message is dropped, with no effect at all
    vad_threshold: float = 0.01  # RMS, about -40 dBFS
    vad_silence_ms: float = 500.0
    audio_chunk_ms: float = 100.0
    input_timeout_s: float = 60.0  # AsyncAPI: 60 s without user input → 1002
    max_duration_s: float = 600.0  # ConversationConfig.max_duration_seconds default
    ping_interval_s: float = 2.0

    def __post_init__(self) -> None:
        if self.strict and self.ignore_unknown:
            raise ValueError("a simulator is either strict or ignores unknown messages, not both")

    @property
    def behaviour(self) -> str:
        """``signal`` (the default), ``strict`` or ``ignore_unknown``."""
        return "strict" if self.strict else "ignore_unknown" if self.ignore_unknown else "signal"


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


@dataclass(slots=True)
class Reaction:
    """What one input causes: frames to send, audio for the media stream, maybe a close."""

    events: list[convai.ServerEvent] = field(default_factory=list)
    caller_audio: list[bytes] = field(default_factory=list)  # PCM16 16 kHz, for media streaming
    agent_audio: list[bytes] = field(default_factory=list)  # PCM16 16 kHz
    close: Close | None = None


class EchoAgent:
    def __init__(
        self,
        conversation_id: str,
        config: AgentConfig,
        now: float,
        *,
        input_timeout_s: float | None = None,
    ) -> None:
        self.conversation_id = conversation_id
        self.config = config
        self.started_at = now
        self.last_input_at = now
        self.input_timeout_s = input_timeout_s or config.input_timeout_s
        self.overrides: convai.ConversationInitiationClientData | None = None
        self.text_only = False
        self.contextual_updates: list[str] = []
        self.tool_results: list[convai.ClientToolResult] = []
        self.turns = 0
        self.closed: Close | None = None
        self._next_event_id = 1
        self._ping_id = 0
        self._next_ping_at = now + config.ping_interval_s
        self._ping_sent: dict[int, float] = {}
        self._last_rtt_ms: int | None = None
        self._turn_id: int | None = None
        self._ptt_open = False
        self._in_speech = False
        self._turn_buf = bytearray()
        self._pending_silence = bytearray()
        self._silence_ms = 0.0
        self._playing_until = now
        self._playing: tuple[int, str, float, float] | None = None  # id, text, start, duration

    # --- entry points -------------------------------------------------------------------------

    def start(self) -> Reaction:
        cfg = self.config
        return Reaction(
            events=[
                convai.ConversationInitiationMetadata(
                    self.conversation_id, cfg.output_format.name, cfg.input_format.name
                )
            ]
        )

    def receive(self, raw: str | bytes, now: float) -> Reaction:
        if self.closed:
            return Reaction()
        try:
            event = convai.parse_client_event(raw)
        except ProtocolError as exc:
            return self._fail(CloseCode.POLICY, "invalid_message", exc.message)
        if getattr(event, "in_spec", True) is False or isinstance(event, convai.UnknownClientEvent):
            if self.config.ignore_unknown:
                return Reaction()  # not even input: the no-input timer runs on
            if self.config.strict:
                return self._fail(CloseCode.POLICY, "invalid_message", f"unknown message type {event.type!r}")
        match event:
            case convai.UserAudioChunk():
                return self._on_audio(event.audio_base_64, now)
            case convai.Pong():
                sent = self._ping_sent.pop(event.event_id, None)
                if sent is not None:
                    self._last_rtt_ms = round((now - sent) * 1000)
                return Reaction()
            case convai.ConversationInitiationClientData():
                return self._on_initiation(event, now)
            case convai.ContextualUpdate():
                self.contextual_updates.append(event.text)
                return Reaction()
            case convai.UserMessage():
                self.last_input_at = now
                return self._on_user_message(event.text, now)
            case convai.UserActivity() | convai.TextKeepAlive():
                self.last_input_at = now
                return Reaction()
            case convai.ClientToolResult():
                self.tool_results.append(event)
                return Reaction()
            case convai.Feedback() | convai.McpToolApprovalResult():
                return Reaction()  # accepted and kept in the frame log; nothing is said back
            case convai.MultimodalMessage():
                self.last_input_at = now
                return self._on_user_message(event.text, now) if event.text else Reaction()
            case convai.UserMessageBegin():
                self.last_input_at = now
                reaction = self._begin_turn(now)
                self._ptt_open = True
                return reaction
            case convai.EndUserAudio():
                self.last_input_at = now
                if not self._ptt_open:
                    return Reaction()
                self._ptt_open = False
                return self._end_turn(bytes(self._turn_buf), now)
            case _:
                return self._fail(CloseCode.POLICY, "invalid_message", f"unknown message type {event.type!r}")

    def tick(self, now: float) -> Reaction:
        """Timers: pings, the no-input timeout (1002) and the maximum duration (1000)."""
        if self.closed:
            return Reaction()
        if now - self.started_at >= self.config.max_duration_s:
            return self._fail(
                CloseCode.NORMAL, "max_duration_exceeded", "Conversation has exceeded maximum duration"
            )
        if now - self.last_input_at >= self.input_timeout_s:
            return self._fail(
                CloseCode.OPERATIONAL,
                "transport_receive_timeout",
                f"no user input for {self.input_timeout_s:g} seconds",
            )
        reaction = Reaction()
        if now >= self._next_ping_at:
            self._ping_id += 1
            self._ping_sent[self._ping_id] = now
            reaction.events.append(convai.Ping(self._ping_id, self._last_rtt_ms))
            self._next_ping_at = now + self.config.ping_interval_s
        return reaction

    def next_deadline(self) -> float:
        return min(
            self._next_ping_at,
            self.last_input_at + self.input_timeout_s,
            self.started_at + self.config.max_duration_s,
        )

    # --- turns --------------------------------------------------------------------------------

    def _on_audio(self, b64: str, now: float) -> Reaction:
        fmt = self.config.input_format
        try:
            data = b64decode_audio(b64)
            if fmt.encoding is Encoding.PCM and len(data) % 2:
                raise AudioError(f"odd byte count {len(data)} for {fmt.name}")
        except AudioError as exc:
            return self._fail(CloseCode.POLICY, "invalid_message", exc.message)
        self.last_input_at = now
        if not data:
            return Reaction()
        pcm16k = to_pcm16(data, fmt, PCM_16000.sample_rate)
        reaction = Reaction(caller_audio=[pcm16k])
        if self._ptt_open:
            self._turn_buf += data
            return reaction
        voiced = rms(to_pcm16(data, fmt, fmt.sample_rate)) >= self.config.vad_threshold
        if not self._in_speech:
            if voiced:
                self._merge(reaction, self._begin_turn(now))
                self._in_speech = True
                self._turn_buf += data
            return reaction
        if voiced:
            self._turn_buf += self._pending_silence
            self._turn_buf += data
            self._pending_silence.clear()
            self._silence_ms = 0.0
            return reaction
        self._pending_silence += data
        self._silence_ms += fmt.duration_ms(len(data))
        if self._silence_ms >= self.config.vad_silence_ms:
            self._in_speech = False
            self._merge(reaction, self._end_turn(bytes(self._turn_buf), now))
        return reaction

    def _begin_turn(self, now: float) -> Reaction:
        reaction = Reaction()
        self._turn_id = self._next_event_id
        self._next_event_id += 1
        self._turn_buf.clear()
        self._pending_silence.clear()
        self._silence_ms = 0.0
        if self._playing and now < self._playing_until:
            # Barge-in: the reply to this turn will carry the interruption's own event_id,
            # as the real service does (elevenlabs-python issue #829).
            rid, text, start, duration = self._playing
            heard = max(0.0, min(1.0, (now - start) / duration)) if duration else 1.0
            reaction.events.append(convai.Interruption(self._turn_id))
            reaction.events.append(
                convai.AgentResponseCorrection(text, text[: int(len(text) * heard)] + "...", rid)
            )
            self._playing_until = now
            self._playing = None
        return reaction

    def _end_turn(self, heard: bytes, now: float) -> Reaction:
        turn_id = self._take_turn_id()
        self._turn_buf.clear()
        self._pending_silence.clear()
        self._silence_ms = 0.0
        if not heard:
            return Reaction()
        self.turns += 1
        fmt = self.config.input_format
        seconds = fmt.duration_ms(len(heard)) / 1000.0
        level = dbfs(rms(to_pcm16(heard, fmt, fmt.sample_rate)))
        reaction = Reaction(
            events=[convai.UserTranscript(f"[{seconds:.2f} s of speech at {level:.0f} dBFS]", turn_id)]
        )
        reply = f"I heard {seconds:.2f} seconds of audio. Here it is back."
        self._merge(
            reaction, self._speak(turn_id, reply, convert(heard, fmt, self.config.output_format), now)
        )
        return reaction

    def _on_user_message(self, text: str, now: float) -> Reaction:
        reaction = self._begin_turn(now)
        turn_id = self._take_turn_id()
        self.turns += 1
        voice = tone(self.config.output_format, min(3000.0, 200.0 + 40.0 * len(text)))
        self._merge(reaction, self._speak(turn_id, f"You wrote: {text}", voice, now))
        return reaction

    def _on_initiation(self, event: convai.ConversationInitiationClientData, now: float) -> Reaction:
        if self.overrides is not None:
            return Reaction()
        self.overrides = event
        conversation = event.conversation_config_override.get("conversation")
        # A text-only conversation (the clients' textOnly option) gets answers without audio.
        self.text_only = isinstance(conversation, dict) and conversation.get("text_only") is True
        agent = event.conversation_config_override.get("agent")
        first = agent.get("first_message") if isinstance(agent, dict) else None
        if not isinstance(first, str) or not first:
            return Reaction()
        voice = tone(self.config.output_format, min(3000.0, 200.0 + 40.0 * len(first)))
        return self._speak(self._take_id(), first, voice, now)

    def _speak(self, event_id: int, text: str, audio: bytes, now: float) -> Reaction:
        out = self.config.output_format
        step = max(out.sample_width, out.bytes_for_ms(self.config.audio_chunk_ms))
        reaction = Reaction(events=[convai.AgentResponse(text, event_id)])
        if self.text_only:
            audio = b""
        for i in range(0, len(audio), step):
            piece = audio[i : i + step]
            reaction.events.append(convai.AgentAudio(b64encode_audio(piece), event_id))
            reaction.agent_audio.append(to_pcm16(piece, out, PCM_16000.sample_rate))
        duration = out.duration_ms(len(audio)) / 1000.0
        self._playing = (event_id, text, now, duration)
        self._playing_until = now + duration
        return reaction

    # --- helpers ------------------------------------------------------------------------------

    def _take_id(self) -> int:
        event_id = self._next_event_id
        self._next_event_id += 1
        return event_id

    def _take_turn_id(self) -> int:
        turn_id = self._turn_id if self._turn_id is not None else self._take_id()
        self._turn_id = None
        return turn_id

    def _fail(self, code: int, error_type: str, message: str) -> Reaction:
        self.closed = Close(code, error_type)
        return Reaction(events=[convai.ServerError(code, error_type, message)], close=self.closed)

    @staticmethod
    def _merge(into: Reaction, other: Reaction) -> None:
        into.events.extend(other.events)
        into.caller_audio.extend(other.caller_audio)
        into.agent_audio.extend(other.agent_audio)
        if other.close:
            into.close = other.close
