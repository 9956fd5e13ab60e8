"""The push-to-talk relay's two audio tracks into a live recording."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from talkgate.errors import AudioError, StorageError
from talkgate.protocol.audio import PCM_16000, AudioFormat, b64decode_audio, convert
from talkgate.recording.mixer import AGENT, CALLER

if TYPE_CHECKING:  # the tap feeds a recorder it is given
    from talkgate.recording.recorder import Recorder


class RelayTap:
    """The push-to-talk relay's audio into a recorder: the caller's PCM and the agent's audio in the
    provider's output format, both converted to the recording's 16 kHz PCM."""

    def __init__(
        self, recorder: Recorder, on_failure: Callable[[StorageError], Awaitable[object]] | None = None
    ) -> None:
        self.recorder = recorder
        self._on_failure = on_failure
        self._told: asyncio.Task[None] | None = None
        recorder.on_error = self._disk_failed

    def _disk_failed(self, _exc: BaseException) -> None:
        if self._told is None:  # the task is kept referenced here until it is done
            self._told = asyncio.ensure_future(self._failed())

    async def caller(self, pcm: bytes, fmt: AudioFormat) -> None:
        await self.recorder.add(CALLER, convert(pcm, fmt, PCM_16000) if fmt != PCM_16000 else pcm)

    async def agent(self, audio_b64: str, fmt: AudioFormat) -> None:
        try:
            audio = b64decode_audio(audio_b64)
        except AudioError:
            return  # the relay forwards the provider's frame as it is; it just is not recorded
        await self.recorder.add(AGENT, convert(audio, fmt, PCM_16000) if fmt != PCM_16000 else audio)

    async def _failed(self) -> None:
        """The disk failed mid-call: the conversation goes on unrecorded; say so once."""
        if self._on_failure is None:
            return
        await self._on_failure(
            StorageError(
                f"recording stopped ({self.recorder.error}); the conversation goes on, "
                "and what was recorded until now is kept"
            )
        )
