"""Deciding and replacing a call's recording are one step, on SQLite and on PostgreSQL: whichever
writer comes first, the call log names the best recording, the store holds exactly its bytes, and
no object is left that no call log names."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from talkgate.calls.recordings import Recordings
from talkgate.persistence.engine import make_engine
from talkgate.persistence.models import AudioSource, cuid
from talkgate.recording.mixer import CALLER
from talkgate.recording.storage import LocalStorage
from talkgate.simulator.mp3 import encode_mp3
from tests.support.gate import make_settings
from tests.support.recordings import find, noise, wav_pcm


@pytest.fixture
async def recordings(repo, tmp_path):
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
    assert await recordings.store_chunks(call)
    source, wav = await consistent(recordings, call)
    assert (source, wav_pcm(wav)) == ("client_chunks", clip)


async def test_a_media_url_is_claimed_once_and_never_after_its_call_ended(repo):
    user = f"user_{cuid()}"
    call = await repo.create_call(user, f"conv_{cuid()}")
    assert not await repo.claim_media(call.conversation_id)  # no URL issued for it
    assert await repo.issue_media(user, call.conversation_id, "conv_provider_1")
    claims = await asyncio.gather(*(repo.claim_media(call.conversation_id) for _ in range(5)))
    assert sorted(claims) == [False] * 4 + [True]  # one socket, whichever process it reached
    assert not await repo.issue_media(user, call.conversation_id, "conv_provider_2")  # live: kept
    await repo.finalize_media(call.conversation_id)
    assert not await repo.claim_media(call.conversation_id)
    ended = await repo.create_call(user, f"conv_{cuid()}")
    assert await repo.issue_media(user, ended.conversation_id, "conv_provider_3")
    await repo.finish_call(ended.conversation_id)
    assert not await repo.claim_media(ended.conversation_id)
    assert not await repo.issue_media(user, ended.conversation_id, "conv_provider_4")


async def test_a_provider_conversation_finds_only_the_call_it_was_started_for(repo):
    alice, bob = f"user_{cuid()}", f"user_{cuid()}"
    provider_cid = f"conv_{cuid()}"
    mine = await repo.create_call(alice, f"conv_{cuid()}")
    await repo.issue_media(alice, mine.conversation_id, provider_cid)
    # Bob names Alice's provider id as his call's own id: it is not a provider id.
    await repo.create_call(bob, provider_cid)
    found = await repo.call_by_provider_conversation("elevenlabs", provider_cid)
    assert found is not None and found.conversation_id == mine.conversation_id
    assert await repo.call_by_provider_conversation("liveavatar", provider_cid) is None
    assert not await repo.issue_media(bob, mine.conversation_id, "conv_bobs")  # not his call


async def test_a_webhook_delivery_is_applied_once(repo):
    digest = cuid().ljust(64, "0")
    claims = await asyncio.gather(
        *(repo.claim_webhook(digest, "post_call_audio", "conv_x") for _ in range(3))
    )
    assert sorted(claims) == [False, False, True]
    await repo.release_webhook(digest)  # not applied after all: the provider's retry may be
    assert await repo.claim_webhook(digest, "post_call_audio", "conv_x")
    assert not await repo.claim_webhook(digest, "post_call_audio", "conv_x")


def migrate(url: str, target: str, direction: str = "upgrade") -> None:
    from alembic import command

    from talkgate.persistence.migrate import alembic_config

    with ThreadPoolExecutor(1) as pool:  # Alembic runs its own event loop
        pool.submit(getattr(command, direction), alembic_config(url), target).result()


async def test_migration_0002_keeps_relay_calls_provider_ids_and_goes_down_and_up(repo, database_url):
    migrate(database_url, "0001", "downgrade")
    user, relay_cid, named_cid = f"user_{cuid()}", f"conv_{cuid()}", f"conv_{cuid()}"
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO users (id) VALUES (:u)"), {"u": user})
            for cid, session in ((relay_cid, "sess_" + cuid()), (named_cid, None)):
                await conn.execute(
                    text(
                        "INSERT INTO call_logs (id, conversation_id, user_id, session_id, provider, status, "
                        "started_at, transcript, turns) VALUES (:id, :cid, :u, :s, 'elevenlabs', 'ended', "
                        "CURRENT_TIMESTAMP, '[]', '[]')"
                    ),
                    {"id": cuid(), "cid": cid, "u": user, "s": session},
                )
        migrate(database_url, "head")
        # A relay call was created under the provider's own id; a signed-URL call's id was a client's.
        relay = await repo.call_by_provider_conversation("elevenlabs", relay_cid)
        assert relay is not None and relay.conversation_id == relay_cid
        assert await repo.call_by_provider_conversation("elevenlabs", named_cid) is None
    finally:
        await engine.dispose()


async def test_linking_the_same_object_twice_deletes_nothing(repo):
    call = await repo.create_call(f"user_{cuid()}", f"conv_{cuid()}")
    key = f"calls/{call.id}/relay-00ff.wav"
    first = await repo.set_call_audio(call.conversation_id, key=key, url="u", source="relay", nbytes=4)
    again = await repo.set_call_audio(call.conversation_id, key=key, url="u", source="relay", nbytes=4)
    assert (first.attached, first.unused_key) == (True, None)
    assert (again.attached, again.unused_key) == (True, None)  # a relink racing its finish
    lower = await repo.set_call_audio(
        call.conversation_id, key="calls/x/provider-1.wav", url="u", source="provider", nbytes=9
    )
    assert (lower.attached, lower.unused_key) == (False, "calls/x/provider-1.wav")
