"""The push-to-talk turn state machine of the push-to-talk relay: idle → talking → idle.

Pure: the relay feeds it app events and sends upstream what it returns. Every illegal event is a
``TurnError`` whose code the app sees in ``conversation_error``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from talkgate.errors import AudioError, ErrorCode, TurnError


class TurnState(StrEnum):
    IDLE = "idle"
    TALKING = "talking"


@dataclass(frozen=True, slots=True)
class TurnStarted:
    turn: int


@dataclass(frozen=True, slots=True)
class AudioAccepted:
    turn: int
    data: bytes


@dataclass(frozen=True, slots=True)
class TurnEnded:
    turn: int
    chunks: int
    nbytes: int


TurnEvent = TurnStarted | AudioAccepted | TurnEnded


class PushToTalk:
    """One app's turns. ``turn`` counts from 1; chunk and byte counts are per turn."""

    __slots__ = ("_chunks", "_nbytes", "state", "turn")

    def __init__(self) -> None:
        self.state = TurnState.IDLE
        self.turn = 0
        self._chunks = 0
        self._nbytes = 0

    def start(self) -> TurnStarted:
        if self.state is TurnState.TALKING:
            raise TurnError(
                f"turn {self.turn} is already recording; send user-audio-end first",
                code=ErrorCode.ALREADY_RECORDING,
            )
        self.state = TurnState.TALKING
        self.turn += 1
        self._chunks = self._nbytes = 0
        return TurnStarted(self.turn)

    def audio(self, data: bytes, *, pcm16: bool = True) -> AudioAccepted:
        """Accept a chunk of the open turn; ``pcm16=False`` for compressed streams (any byte count)."""
        if self.state is not TurnState.TALKING:
            raise TurnError(
                "audio outside a turn is not forwarded; send user-audio-start first",
                code=ErrorCode.NOT_RECORDING,
            )
        if not data:
            raise AudioError("empty audio chunk is never forwarded", code=ErrorCode.EMPTY_AUDIO)
        if pcm16 and len(data) % 2:
            raise AudioError(f"PCM16 audio needs an even number of bytes, got {len(data)}")
        self._chunks += 1
        self._nbytes += len(data)
        return AudioAccepted(self.turn, data)

    def end(self) -> TurnEnded:
        if self.state is not TurnState.TALKING:
            raise TurnError("user-audio-end without user-audio-start", code=ErrorCode.NOT_RECORDING)
        self.state = TurnState.IDLE
        return TurnEnded(self.turn, self._chunks, self._nbytes)

    @property
    def talking(self) -> bool:
        return self.state is TurnState.TALKING
