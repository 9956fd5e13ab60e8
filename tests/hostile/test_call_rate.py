"""One user starting, filling and ending calls in a loop: each end frees its place among the calls
in progress, but not its place in TALKGATE_MAX_CALLS_PER_USER_PER_HOUR. Every mode's start counts
(direct signed URL with a call, avatar session, relay conversation_start) and is refused with 429
``too_many_calls`` before the provider is asked; concurrent starts do not pass the rate."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest
from pydantic import SecretStr

from tests.support.gate import connect, start_gate
from tests.support.hostile import count

RATE = 3
MESSAGE = "you started 3 calls in the last hour; try again later (TALKGATE_MAX_CALLS_PER_USER_PER_HOUR)"


@pytest.fixture
def rate_gate(tmp_path, simulator, database_url):
    g = start_gate(
        tmp_path,
        simulator,
        database_url=database_url,
        media_streaming=False,
        max_calls_per_user_per_hour=RATE,
        liveavatar_api_key=SecretStr("sim-liveavatar-key"),
        liveavatar_base_url=simulator.http_url,
        liveavatar_avatar_id="00000000-0000-4000-8000-00000000a1a1",
    )
    yield g
    g.server.stop()


def someone() -> str:
    return f"user-{secrets.token_hex(4)}"  # the PostgreSQL database is shared by the run's tests


def provider_starts(simulator) -> tuple[int, int]:
    """Avatar sessions and ElevenLabs conversations the deployer's keys were used for."""
    state = simulator.server.config.app.state
    return len(state.liveavatar.sessions), len(state.registry.conversations)


async def test_a_loop_of_start_fill_end_stops_at_the_hourly_rate_in_every_mode(rate_gate, simulator):
    gate, user = rate_gate, someone()
    h = gate.headers(user)
    async with httpx.AsyncClient(base_url=gate.url) as client:
        for i in range(2):
            cid = f"loop-{user}-{i}"
            assert (
                await client.post("/api/elevenlabs-signed-url", headers=h, json={"conversationId": cid})
            ).is_success
            assert (
                await client.post(f"/api/calls/{cid}/chunks", headers=h, content=b"\x01\x02" * 800)
            ).is_success
            assert (await client.post(f"/api/calls/{cid}/end", headers=h)).json()["status"] == "ended"
        avatar = (await client.post("/api/liveavatar/session", headers=h, json={})).json()["conversationId"]
        await client.post(f"/api/liveavatar/session/{avatar}/stop", headers=h, json={})
        before = provider_starts(simulator)
        direct = await client.post(
            "/api/elevenlabs-signed-url", headers=h, json={"conversationId": f"x-{user}"}
        )
        again = await client.post("/api/liveavatar/session", headers=h, json={})
        signed_only = await client.post("/api/elevenlabs-signed-url", headers=h, json={})
        other = await client.post("/api/liveavatar/session", headers=gate.headers(someone()), json={})
        listed = (await client.get("/api/calls", headers=h)).json()
    app = await connect(gate, user)
    try:
        relay = await app.call("conversation_start", {"voice": "default"})
    finally:
        await app.sio.disconnect()
    count("call starts (over the hourly rate)", 3)
    for refused in (direct, again):
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"] == {"code": "too_many_calls", "message": MESSAGE}
    assert relay["ok"] is False and relay["error"] == {"code": "too_many_calls", "message": MESSAGE}
    assert provider_starts(simulator)[0] == before[0] + 1  # only the other user's avatar session
    assert provider_starts(simulator)[1] == before[1]  # no relay conversation was opened for it
    assert signed_only.status_code == 200  # a signed URL without a call opens no call log
    assert other.status_code == 200  # the rate is per user
    assert listed["total"] == RATE and all(c["status"] != "active" for c in listed["calls"])


async def test_concurrent_starts_do_not_pass_the_rate(rate_gate):
    gate, user = rate_gate, someone()
    async with httpx.AsyncClient(base_url=gate.url) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/api/elevenlabs-signed-url",
                    headers=gate.headers(user),
                    json={"conversationId": f"r{i}-{user}"},
                )
                for i in range(10)
            )
        )
    count("call starts (concurrent, over the hourly rate)", len(answers))
    assert sorted(r.status_code for r in answers) == [200] * RATE + [429] * (10 - RATE)
    assert {r.json()["error"]["code"] for r in answers if r.status_code == 429} == {"too_many_calls"}
