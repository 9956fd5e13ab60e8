"""Abandoned calls over real HTTP: a direct call nobody connected and an avatar call whose page went
away are ended ``abandoned`` after TALKGATE_CALL_IDLE_TIMEOUT (the avatar's recording from the
chunks that arrived, its provider session stopped), freeing the user's slots; a call that keeps
showing life stays active."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from pydantic import SecretStr

from tests.support.gate import start_gate
from tests.support.recordings import noise, wav_pcm
from tests.support.timing import TIMEOUT

IDLE_S = 0.8
KEY = "sim-liveavatar-key"
AVATAR = "00000000-0000-4000-8000-00000000a1a1"


@pytest.fixture
def idle_gate(tmp_path, simulator):
    gate = start_gate(
        tmp_path,
        simulator,
        liveavatar_api_key=SecretStr(KEY),
        liveavatar_base_url=simulator.http_url,
        liveavatar_avatar_id=AVATAR,
        call_idle_timeout_s=IDLE_S,
        max_active_calls_per_user=3,
    )
    yield gate
    gate.server.stop()


async def test_calls_nobody_ends_are_ended_abandoned_and_free_their_slots(idle_gate, simulator):
    gate = idle_gate
    h = gate.headers()
    speech = noise(500, 3)
    async with httpx.AsyncClient(base_url=gate.url, timeout=TIMEOUT) as client:
        started = (await client.post("/api/liveavatar/session", headers=h, json={})).json()
        avatar = started["conversationId"]
        assert (
            await client.post(f"/api/calls/{avatar}/chunks", headers=h, content=speech)
        ).status_code == 200
        for cid in ("idle-direct-1", "kept-direct-1"):
            r = await client.post("/api/elevenlabs-signed-url", headers=h, json={"conversationId": cid})
            assert r.status_code == 200, r.text
        full = await client.post("/api/elevenlabs-signed-url", headers=h, json={"conversationId": "one-more"})

        async def status(cid: str) -> str:
            return str((await client.get(f"/api/calls/{cid}", headers=h)).json()["status"])

        # The kept call shows life (a chunk) while the two others wait out the timeout.
        async with asyncio.timeout(TIMEOUT):
            while await status(avatar) == "active" or await status("idle-direct-1") == "active":
                kept = await client.post("/api/calls/kept-direct-1/chunks", headers=h, content=speech[:3200])
                assert kept.status_code == 200, kept.text
                await asyncio.sleep(IDLE_S / 8)  # the pace of a page's uploads, not a wait on the server
        kept_call = (await client.get("/api/calls/kept-direct-1", headers=h)).json()
        calls = {
            cid: (await client.get(f"/api/calls/{cid}", headers=h)).json()
            for cid in (avatar, "idle-direct-1")
        }
        served = await client.get(f"/api/calls/{avatar}/audio", headers=h)
        late = await client.post(f"/api/calls/{avatar}/chunks", headers=h, content=speech)
        keep_alive = await client.post(f"/api/liveavatar/session/{avatar}/keep-alive", headers=h)
        freed = await client.post(
            "/api/elevenlabs-signed-url", headers=h, json={"conversationId": "one-more"}
        )
    assert full.status_code == 429 and full.json()["error"]["code"] == "too_many_conversations"
    for call in calls.values():
        assert (call["status"], call["endReason"]) == ("ended", "abandoned") and call["endedAt"]
    assert calls[avatar]["recording"] == "ready" and calls[avatar]["audioSource"] == "client_chunks"
    assert wav_pcm(served.content) == speech  # what arrived before the page went away
    assert calls["idle-direct-1"]["recording"] == "none" and calls["idle-direct-1"]["noRecordingReason"]
    assert kept_call["status"] == "active" and kept_call["recording"] == "in_progress"
    assert (late.status_code, late.json()["error"]["code"]) == (409, "call_ended")
    assert keep_alive.json()["error"]["code"] == "no_conversation"
    async with httpx.AsyncClient() as sim:
        seen = await sim.get(
            f"{simulator.http_url}/_simulator/liveavatar/sessions/{started['avatarSessionId']}"
        )
    assert seen.json()["stoppedReason"] == "USER_DISCONNECTED"  # the provider's session stopped too
    assert freed.status_code == 200, freed.text
