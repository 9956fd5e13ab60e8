"""Deciding and replacing a call's recording are one step, on SQLite and on PostgreSQL: whichever
writer comes first, the call log names the best recording, the store holds exactly its bytes, and
no object is left that no call log names."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from talkgate.persistence.models import AudioSource, cuid
from talkgate.recording.mixer import CALLER
from talkgate.recording.storage import LocalStorage
from talkgate.simulator.mp3 import encode_mp3
from talkgate.web.recordings import Recordings
from tests.persistence.test_repository import repo  # noqa: F401 - the repository on both databases
from tests.web.conftest import make_settings
from tests.web.recording_helpers import find, noise, wav_pcm


@pytest.fixture
async def recordings(repo, tmp_path):  # noqa: F811
    storage = LocalStorage(tmp_path / "store")
    await storage.check()
    return Recordings(make_settings(tmp_path, None), repo, storage, provider=None)  # type: ignore[arg-type]


def objects(recordings: Recordings) -> dict[str, bytes]:
    root: Path = recordings.storage.root  # type: ignore[attr-defined]
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


async def new_call(recordings: Recordings) -> Any:
    return await recordings.repo.create_call(f"user_{cuid()}", f"conv_{cuid()}")


async def relay_finish(recordings: Recordings, call: Any, clip: bytes) -> None:
    live = await recordings.start(call, AudioSource.RELAY)
    await live.recorder.add(CALLER, clip)
    await recordings.finish(live)


async def provider_copy(recordings: Recordings, call: Any) -> None:
    await recordings.import_provider_audio(call, encode_mp3(noise(300, seed=7), 16000))


async def consistent(recordings: Recordings, call: Any) -> tuple[str, bytes]:
    """The row's source and the bytes it names, after checking they are the only object."""
    row = await recordings.repo.call_by_conversation(call.conversation_id)
    stored = objects(recordings)
    assert list(stored) == [row.audio_key], "an object no call log names was left"
    assert row.audio_bytes == len(stored[row.audio_key])
    return row.audio_source, stored[row.audio_key]


@pytest.mark.parametrize("order", ["relay_first", "provider_first", "together"])
async def test_the_relay_recording_wins_against_the_webhook_in_any_order(recordings, order):
    call = await new_call(recordings)
    clip = noise(200, seed=8)
    relay, provider = relay_finish(recordings, call, clip), provider_copy(recordings, call)
    if order == "relay_first":
        await relay
        await provider
    elif order == "provider_first":
        await provider
        await relay
    else:
        await asyncio.gather(relay, provider)
    source, wav = await consistent(recordings, call)
    assert source == "relay"
    pcm = wav_pcm(wav)
    assert pcm[find(pcm, clip[:64]) :] == clip


async def test_two_copies_of_equal_rank_keep_the_first_and_delete_the_second(recordings):
    call = await new_call(recordings)
    await provider_copy(recordings, call)
    _, first = await consistent(recordings, call)
    await asyncio.gather(provider_copy(recordings, call), provider_copy(recordings, call))
    assert await consistent(recordings, call) == ("provider", first)


async def test_a_better_source_replaces_the_stored_object_and_deletes_the_old_one(recordings):
    call = await new_call(recordings)
    await provider_copy(recordings, call)
    clip = noise(100, seed=9)
    await recordings.add_chunk(call, clip)
    assert await recordings._store_chunks(call)
    source, wav = await consistent(recordings, call)
    assert (source, wav_pcm(wav)) == ("client_chunks", clip)
