"""The call-end fallback chain (talkgate.calls.ending) over fake recordings and repository: which
source a call ends with, in which order, and that ending twice changes nothing."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from talkgate.calls import ending
from talkgate.persistence.models import AudioSource, CallStatus, utcnow
from talkgate.protocol.ends import EndReason

pytestmark = [pytest.mark.unit, pytest.mark.timeout(5)]


class ChainRecordings:
    """What the chain asks of ``Recordings``; ``has`` says which sources exist for this call."""

    def __init__(self, row: Any, *, chunks: bool = False, relinkable: bool = False) -> None:
        self.row = row
        self.asked: list[str] = []
        self.finished: dict[str, Any] = {}
        self.settings = SimpleNamespace(call_end_wait_s=0.0)
        self.live: dict[str, Any] = {}
        self._chunks, self._relinkable = chunks, relinkable
        self.repo = SimpleNamespace(
            call_by_conversation=self.call_by_conversation, finish_call=self.finish_call
        )
        self.chunks = SimpleNamespace(discard=self.discard)
        self.provider = SimpleNamespace(recording=self.recording)

    async def call_by_conversation(self, _cid: str) -> Any:
        return self.row

    async def finish_call(self, _cid: str, **fields: Any) -> None:
        self.finished = fields
        self.row.status = CallStatus.ENDED

    async def discard(self, call_id: str) -> None:
        self.asked.append(f"discard {call_id}")

    async def relink(self, call: Any) -> bool:
        self.asked.append("relink")
        if self._relinkable:
            self.row.audio_key = "calls/k/relay-1.wav"
        return self._relinkable

    async def store_chunks(self, call: Any) -> bool:
        self.asked.append("chunks")
        return self._chunks

    async def recording(self, provider_cid: str) -> bytes:
        self.asked.append(f"provider {provider_cid}")
        return b"mp3"

    async def import_provider_audio(self, call: Any, audio: bytes) -> bool:
        return True


def row(**fields: Any) -> Any:
    base = {
        "id": "k",
        "conversation_id": "c1",
        "audio_key": None,
        "audio_source": None,
        "status": CallStatus.ACTIVE,
        "started_at": utcnow() - timedelta(seconds=2),
        "provider": "elevenlabs",
        "provider_conversation_id": "p1",
    }
    return SimpleNamespace(**{**base, **fields})


async def test_the_apps_chunks_come_before_the_provider_and_the_call_ends_as_call_end() -> None:
    recordings = ChainRecordings(row(), chunks=True)
    ended = await ending.end_call(recordings, recordings.row)  # type: ignore[arg-type]
    assert recordings.asked == ["relink", "chunks", "discard k"]
    assert recordings.finished["end_reason"] is EndReason.CALL_END
    assert recordings.finished["duration_ms"] >= 2000 and ended.status == CallStatus.ENDED


async def test_without_chunks_the_provider_is_asked_by_its_own_id_only() -> None:
    recordings = ChainRecordings(row())
    await ending.end_call(recordings, recordings.row)  # type: ignore[arg-type]
    assert recordings.asked == ["relink", "chunks", "provider p1", "discard k"]
    unknown = ChainRecordings(row(provider_conversation_id=None))
    await ending.end_call(unknown, unknown.row)  # type: ignore[arg-type]
    assert unknown.asked == ["relink", "chunks", "discard k"]


async def test_a_live_recording_stored_during_an_outage_is_relinked_before_any_fallback() -> None:
    recordings = ChainRecordings(row(audio_source=AudioSource.RELAY), relinkable=True)
    await ending.end_call(recordings, recordings.row)  # type: ignore[arg-type]
    assert recordings.asked == ["relink", "discard k"]


async def test_ending_an_ended_call_with_a_recording_changes_nothing() -> None:
    done = row(audio_key="calls/k/media_stream-1.wav", status=CallStatus.ENDED)
    recordings = ChainRecordings(done)
    assert await ending.end_call(recordings, done) is done  # type: ignore[arg-type]
    assert recordings.asked == ["discard k"] and recordings.finished == {}


@pytest.mark.parametrize(
    ("provider", "status", "key", "want", "reason"),
    [
        ("liveavatar", CallStatus.ENDED, "calls/1/client_chunks-a.wav", ("ready", None), None),
        ("liveavatar", CallStatus.ACTIVE, None, ("in_progress", None), None),
        ("liveavatar", CallStatus.ENDED, None, ("none", ending.NO_RECORDING["liveavatar"]), None),
        ("elevenlabs", CallStatus.ENDED, None, ("none", ending.NO_RECORDING["elevenlabs"]), None),
        ("elevenlabs", CallStatus.RECOVERED, None, ("none", ending.NO_RECORDING["elevenlabs"]), None),
        ("liveavatar", CallStatus.FAILED, None, ("none", ending.NOT_STARTED), None),
        ("liveavatar", CallStatus.FAILED, None, ("none", ending.NEVER_CONNECTED), EndReason.NEVER_CONNECTED),
    ],
)
def test_a_call_says_where_its_recording_stands_and_why_it_has_none(provider, status, key, want, reason):
    call = SimpleNamespace(provider=provider, status=status, audio_key=key, end_reason=reason)
    assert ending.recording_state(call) == want  # type: ignore[arg-type]
