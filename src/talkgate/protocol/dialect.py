"""Translations between the push-to-talk relay's signal dialect and ElevenLabs' published API
(docs/protocol.md "Push-to-talk dialects").

Each setting keeps the signal dialect's behaviour as default and offers the documented alternative.
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


@dataclass(frozen=True, slots=True)
class Dialect:
    turn_end: TurnEndMode = TurnEndMode.SIGNAL
    keepalive: KeepAliveMode = KeepAliveMode.TEXT
    silence_ms: int = 800

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


def rejection_hint(last_type: str | None) -> str | None:
    """A message naming the setting to change, if ``last_type`` is a signal-dialect message."""
    if last_type not in SETTING_FOR_TYPE:
        return None
    setting, value = SETTING_FOR_TYPE[last_type]
    return (
        f"the provider refused {last_type!r}, which is not in its published API; "
        f"set {setting}={value} to use the documented alternative"
    )
