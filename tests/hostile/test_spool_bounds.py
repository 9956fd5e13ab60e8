"""The spool against an app that keeps uploading: chunks to an ended call, more than a call keeps,
more than the spool holds; and files nobody will use, cleaned at call end and at start-up."""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import threading

import httpx
import pytest

from tests.support.gate import start_gate
from tests.support.hostile import count
from tests.support.recordings import noise
from tests.support.timing import TIMEOUT, wait_until

CHUNK = noise(2000, seed=21)  # 64 000 bytes of PCM16


async def register(client: httpx.AsyncClient, gate, cid: str) -> None:
    r = await client.post("/api/elevenlabs-signed-url", headers=gate.headers(), json={"conversationId": cid})
    assert r.status_code == 200, r.text


async def upload(client: httpx.AsyncClient, gate, cid: str, pcm: bytes = CHUNK) -> httpx.Response:
    headers = {**gate.headers(), "content-type": "application/octet-stream"}
    return await client.post(f"/api/calls/{cid}/chunks", headers=headers, content=pcm)


def chunk_files(gate) -> list[str]:
    spool = gate.settings.spool_dir
    return sorted(p.name for p in spool.glob("*.chunks.pcm")) if spool.is_dir() else []


@pytest.fixture
def plain_gate(tmp_path, simulator):
    g = start_gate(tmp_path, simulator, media_streaming=False)
    yield g
    g.server.stop()


async def test_chunks_to_an_ended_call_are_refused_and_leave_no_file(plain_gate):
    gate = plain_gate
    async with httpx.AsyncClient(base_url=gate.url) as client:
        await register(client, gate, "conv_ended")
        assert (await upload(client, gate, "conv_ended")).status_code == 200
        call = (await client.post("/api/calls/conv_ended/end", headers=gate.headers())).json()
        assert call["audioSource"] == "client_chunks" and call["status"] == "ended"
        for _ in range(3):
            r = await upload(client, gate, "conv_ended")
            count("chunk uploads (ended call)")
            assert r.status_code == 409
            assert r.json()["error"]["code"] == "call_ended"
    assert chunk_files(gate) == []


async def test_a_call_keeps_at_most_its_setting_of_chunks(tmp_path, simulator):
    gate = start_gate(tmp_path, simulator, media_streaming=False, max_call_chunks_bytes=100_000)
    try:
        async with httpx.AsyncClient(base_url=gate.url) as client:
            await register(client, gate, "conv_full")
            assert (await upload(client, gate, "conv_full")).json()["totalBytes"] == len(CHUNK)
            r = await upload(client, gate, "conv_full")
            count("chunk uploads (over the call's cap)")
            assert r.status_code == 413
            assert r.json()["error"]["code"] == "too_much_audio"
            assert "TALKGATE_MAX_CALL_CHUNKS_BYTES" in r.json()["error"]["message"]
            call = (await client.post("/api/calls/conv_full/end", headers=gate.headers())).json()
            assert call["audioBytes"] == 44 + len(CHUNK)  # what was accepted is kept
    finally:
        gate.server.stop()


async def test_past_the_spools_total_chunk_uploads_are_refused(tmp_path, simulator):
    gate = start_gate(tmp_path, simulator, media_streaming=False, max_spool_bytes=150_000)
    try:
        async with httpx.AsyncClient(base_url=gate.url) as client:
            for cid in ("conv_a", "conv_b", "conv_c"):
                await register(client, gate, cid)
            assert (await upload(client, gate, "conv_a")).status_code == 200
            assert (await upload(client, gate, "conv_b")).status_code == 200
            r = await upload(client, gate, "conv_c")  # 192 000 bytes would be over 150 000
            count("chunk uploads (spool full)")
            assert r.status_code == 507
            assert r.json()["error"]["code"] == "spool_full"
            assert r.headers["retry-after"] == "60"
            # A call's end empties its part of the spool: uploads are taken again.
            await client.post("/api/calls/conv_a/end", headers=gate.headers())
            assert (await upload(client, gate, "conv_c")).status_code == 200
    finally:
        gate.server.stop()


async def test_orphaned_chunk_files_are_cleaned_at_start_up(tmp_path, simulator):
    gate = start_gate(tmp_path, simulator, media_streaming=False)
    spool = gate.settings.spool_dir
    try:
        async with httpx.AsyncClient(base_url=gate.url) as client:
            await register(client, gate, "conv_live")
            await upload(client, gate, "conv_live")
            (live_file,) = chunk_files(gate)
            await register(client, gate, "conv_done")
            await upload(client, gate, "conv_done")
            (done_file,) = set(chunk_files(gate)) - {live_file}
            kept = tmp_path / "kept"
            shutil.copy(spool / done_file, kept)
            await client.post("/api/calls/conv_done/end", headers=gate.headers())
    finally:
        gate.server.stop()
    shutil.copy(kept, spool / done_file)  # as if a crash had left it after the call's end
    (spool / "nosuchcall0123456789.chunks.pcm").write_bytes(CHUNK)  # a call that does not exist
    (spool / "heldbyanother012345.chunks.pcm").write_bytes(CHUNK)  # ...being written elsewhere
    held = os.open(spool / "heldbyanother012345.chunks.pcm", os.O_WRONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        gate = start_gate(tmp_path, simulator, media_streaming=False)
        gate.server.stop()
    finally:
        os.close(held)
    count("orphaned chunk files", 2)
    assert chunk_files(gate) == sorted([live_file, "heldbyanother012345.chunks.pcm"])


async def test_a_chunk_written_while_its_call_ends_leaves_no_file(plain_gate):
    """An upload that passed the "call in progress" check, its write held until the call's end
    has finished: it is refused and its file removed (it was an orphan until the next start)."""
    gate = plain_gate
    spool = gate.app.runtime.recordings.chunks
    entered, release = threading.Event(), threading.Event()
    original = spool._append

    def held_append(call_id: str, pcm: bytes) -> int:
        entered.set()
        release.wait(TIMEOUT)
        return original(call_id, pcm)

    async with httpx.AsyncClient(base_url=gate.url) as client:
        await register(client, gate, "conv_racing")
        spool._append = held_append
        try:
            racing = asyncio.ensure_future(upload(client, gate, "conv_racing"))
            await wait_until(entered.is_set)
            ended = await client.post("/api/calls/conv_racing/end", headers=gate.headers())
            assert ended.json()["status"] == "ended"
            release.set()
            r = await racing
        finally:
            spool._append = original
    count("chunk uploads (racing the call's end)")
    assert r.status_code == 409 and r.json()["error"]["code"] == "call_ended"
    assert chunk_files(gate) == []
