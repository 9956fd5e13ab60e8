"""Translations between the push-to-talk relay's signal dialect and ElevenLabs' published API
(docs/protocol.md "Push-to-talk dialects").

Each setting defaults to ``auto``, which ``resolve`` turns into the published API against a real
provider and into the signal dialect against the built-in simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from talkgate.protocol import convai
from talkgate.protocol.audio import AudioFormat, b64encode_audio, silence
from talkgate.protocol.ptt import AudioAccepted, TurnEnded, TurnEvent, TurnStarted


class TurnEndMode(StrEnum):
    SIGNAL = "signal"  # {"type":"user_message_begin"} / {"type":"end_user_audio"} (the signal dialect)
    SILENCE = "silence"  # a silence tail so the provider's VAD ends the turn (published API)


class KeepAliveMode(StrEnum):
    TEXT = "text"  # {"text": " "} (the signal dialect)
    USER_ACTIVITY = "user_activity"  # {"type": "user_activity"} (published API)


# Which setting to change when the provider refuses a signal-dialect message (close 1008).
SETTING_FOR_TYPE = {
    convai.UserMessageBegin.type: ("TALKGATE_PTT_TURN_END", TurnEndMode.SILENCE.value),
    convai.EndUserAudio.type: ("TALKGATE_PTT_TURN_END", TurnEndMode.SILENCE.value),
    convai.TextKeepAlive.type: ("TALKGATE_KEEPALIVE", KeepAliveMode.USER_ACTIVITY.value),
}

SILENCE_CHUNK_MS = 100
# The published API's turn end: a silence tail its VAD closes. How this length was chosen:
# docs/protocol.md "Push-to-talk dialects".
DEFAULT_SILENCE_MS = 1500
# The signal dialect's idle timeout, in seconds (the most the parameter allows).
SIGNAL_INACTIVITY_TIMEOUT = 180

AUTO = "auto"  # the settings' value for "decide by provider"; ``None`` below


@dataclass(frozen=True, slots=True)
class Dialect:
    turn_end: TurnEndMode = TurnEndMode.SIGNAL
    keepalive: KeepAliveMode = KeepAliveMode.TEXT
    silence_ms: int = DEFAULT_SILENCE_MS
    # Seconds, sent as the socket URL's ``inactivity_timeout`` (not in the published API); 0: not sent.
    inactivity_timeout: int = 0

    def upstream(self, event: TurnEvent, fmt: AudioFormat) -> list[convai.ClientEvent]:
        """What to send the provider for one PTT event; ``fmt`` is the provider's input format."""
        if isinstance(event, AudioAccepted):
            return [convai.UserAudioChunk(b64encode_audio(event.data))]
        if self.turn_end is TurnEndMode.SIGNAL:
            if isinstance(event, TurnStarted):
                return [convai.UserMessageBegin()]
            return [convai.EndUserAudio()]
        if isinstance(event, TurnStarted):
            return []
        assert isinstance(event, TurnEnded)
        return self.silence_tail(fmt)

    def silence_tail(self, fmt: AudioFormat) -> list[convai.ClientEvent]:
        chunk = b64encode_audio(silence(fmt, SILENCE_CHUNK_MS))
        n = max(1, -(-self.silence_ms // SILENCE_CHUNK_MS))
        return [convai.UserAudioChunk(chunk) for _ in range(n)]

    def keepalive_event(self) -> convai.ClientEvent:
        if self.keepalive is KeepAliveMode.TEXT:
            return convai.TextKeepAlive()
        return convai.UserActivity()


def resolve(
    turn_end: TurnEndMode | None,
    keepalive: KeepAliveMode | None,
    inactivity_timeout: int | None,
    silence_ms: int,
    *,
    published_only: bool,
) -> Dialect:
    """The dialect the settings ask for; each ``None`` (``auto``) becomes the published API when
    ``published_only`` (a real provider), else the signal dialect (the built-in simulator).

    The unpublished ``inactivity_timeout`` URL parameter goes only with the signal dialect's turn
    end: without it, the keep-alive is what keeps a quiet conversation open."""
    if turn_end is None:
        turn_end = TurnEndMode.SILENCE if published_only else TurnEndMode.SIGNAL
    if keepalive is None:
        keepalive = KeepAliveMode.USER_ACTIVITY if published_only else KeepAliveMode.TEXT
    if turn_end is not TurnEndMode.SIGNAL:
        inactivity_timeout = 0
    elif inactivity_timeout is None:
        inactivity_timeout = SIGNAL_INACTIVITY_TIMEOUT
    return Dialect(turn_end, keepalive, silence_ms, inactivity_timeout)


def rejection_hint(last_type: str | None) -> str | None:
    """A message naming the setting to change, if ``last_type`` is a signal-dialect message."""
    if last_type not in SETTING_FOR_TYPE:
        return None
    setting, value = SETTING_FOR_TYPE[last_type]
    return (
        f"the provider refused {last_type!r}, which is not in its published API; "
        f"set {setting}={value} to use the documented alternative"
    )
