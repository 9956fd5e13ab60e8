"""One user against the database: sessions and call logs without end, metadata without bound. Each is
capped per user, with a code that says which cap, and the cap holds under concurrent requests."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest
from pydantic import SecretStr

from tests.support.gate import start_gate
from tests.support.hostile import count


@pytest.fixture
def capped_gate(tmp_path, simulator, database_url):
    g = start_gate(
        tmp_path,
        simulator,
        database_url=database_url,
        media_streaming=False,
        max_active_sessions_per_user=3,
        max_active_calls_per_user=2,
    )
    yield g
    g.server.stop()


def someone() -> str:
    return f"user-{secrets.token_hex(4)}"  # the PostgreSQL database is shared by the run's tests


async def test_a_user_has_at_most_the_cap_of_active_sessions(capped_gate):
    gate, user = capped_gate, someone()
    headers = gate.headers(user)
    async with httpx.AsyncClient(base_url=gate.url) as client:
        ids = []
        for _ in range(3):
            r = await client.post("/conversation/start-session", headers=headers, json={})
            assert r.status_code == 200, r.text
            ids.append(r.json()["sessionId"])
        for _ in range(3):
            r = await client.post("/conversation/start-session", headers=headers, json={})
            count("session starts (over the cap)")
            assert r.status_code == 429
            assert r.json()["error"]["code"] == "too_many_sessions"
        again = await client.post("/conversation/start-session", headers=headers, json={"sessionId": ids[0]})
        assert again.status_code == 200 and again.json()["sessionId"] == ids[0]  # the same one: not new
        other = await client.post("/conversation/start-session", headers=gate.headers(someone()), json={})
        assert other.status_code == 200  # the cap is per user
        await client.post("/conversation/end-session", headers=headers, json={"sessionId": ids[0]})
        r = await client.post("/conversation/start-session", headers=headers, json={})
        assert r.status_code == 200  # an ended session frees its place


async def test_concurrent_session_starts_do_not_pass_the_cap(capped_gate):
    gate, user = capped_gate, someone()
    async with httpx.AsyncClient(base_url=gate.url) as client:
        answers = await asyncio.gather(
            *(
                client.post("/conversation/start-session", headers=gate.headers(user), json={})
                for _ in range(12)
            )
        )
    count("session starts (concurrent)", len(answers))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] * 3 + [429] * 9, statuses


async def test_a_user_has_at_most_the_cap_of_calls_in_progress(capped_gate):
    gate, user = capped_gate, someone()
    headers = gate.headers(user)
    async with httpx.AsyncClient(base_url=gate.url) as client:

        async def open_call(cid: str) -> httpx.Response:
            return await client.post(
                "/api/elevenlabs-signed-url", headers=headers, json={"conversationId": cid}
            )

        assert (await open_call("capped_1")).status_code == 200
        assert (await open_call("capped_2")).status_code == 200
        for cid in ("capped_3", "capped_4"):
            r = await open_call(cid)
            count("call logs (over the cap)")
            assert r.status_code == 429
            assert r.json()["error"]["code"] == "too_many_conversations"
        assert (await open_call("capped_1")).status_code == 200  # the same call again: not a new one
        r = await client.get("/api/calls", headers=headers)
        assert r.json()["total"] == 2
        await client.post("/api/calls/capped_1/end", headers=headers)
        assert (await open_call("capped_3")).status_code == 200

        answers = await asyncio.gather(*(open_call(f"race_{i}") for i in range(8)))
        count("call logs (concurrent)", len(answers))
        assert sorted(r.status_code for r in answers) == [429] * 8  # two in progress already


async def test_calls_never_ended_stop_counting_after_the_window(tmp_path, simulator):
    # A window of 3.6 microseconds: every call begun before this request is "abandoned".
    gate = start_gate(
        tmp_path, simulator, media_streaming=False, max_active_calls_per_user=1, active_window_hours=1e-9
    )
    try:
        async with httpx.AsyncClient(base_url=gate.url) as client:
            for cid in ("stale_1", "stale_2", "stale_3"):
                r = await client.post(
                    "/api/elevenlabs-signed-url", headers=gate.headers(), json={"conversationId": cid}
                )
                assert r.status_code == 200, r.text
    finally:
        gate.server.stop()


@pytest.mark.parametrize(
    ("metadata", "ok"),
    [
        ({"note": "x" * 4000}, True),
        ({"note": "x" * 4100}, False),
        ({f"k{i}": i for i in range(600)}, False),
        ({"a": {"b": {"c": {"d": {"e": {"f": {"g": [1]}}}}}}}, True),  # 8 levels
        ({"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": [1]}}}}}}}}, False),  # 9
    ],
)
async def test_session_metadata_is_bounded_in_size_and_depth(capped_gate, metadata, ok):
    gate = capped_gate
    async with httpx.AsyncClient(base_url=gate.url) as client:
        r = await client.post(
            "/conversation/start-session", headers=gate.headers(someone()), json={"metadata": metadata}
        )
    count("session metadata")
    if ok:
        assert r.status_code == 200, r.text
        assert r.json()["metadata"] == metadata
    else:
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "metadata_too_large"


@pytest.fixture
def avatar_capped_gate(tmp_path, simulator, database_url):
    g = start_gate(
        tmp_path,
        simulator,
        database_url=database_url,
        media_streaming=False,
        max_active_sessions_per_user=50,
        max_active_calls_per_user=2,
        liveavatar_api_key=SecretStr("sim-liveavatar-key"),
        liveavatar_base_url=simulator.http_url,
        liveavatar_avatar_id="00000000-0000-4000-8000-00000000a1a1",
    )
    yield g
    g.server.stop()


def provider_sessions(simulator) -> int:
    """How many sessions the deployer's LiveAvatar key was used for (the simulator's own record)."""
    return len(simulator.server.config.app.state.liveavatar.sessions)


async def test_avatar_sessions_count_toward_the_cap_before_the_provider_is_asked(
    avatar_capped_gate, simulator
):
    gate, user = avatar_capped_gate, someone()
    headers = gate.headers(user)
    async with httpx.AsyncClient(base_url=gate.url) as client:

        async def start_avatar() -> httpx.Response:
            return await client.post("/api/liveavatar/session", headers=headers, json={})

        answers = await asyncio.gather(*(start_avatar() for _ in range(12)))
        count("avatar session starts (concurrent)", len(answers))
        assert sorted(r.status_code for r in answers) == [200] * 2 + [429] * 10
        refused = [r.json()["error"] for r in answers if r.status_code == 429]
        assert {e["code"] for e in refused} == {"too_many_conversations"}
        assert provider_sessions(simulator) == 2  # a refused start minted no provider session
        # One cap for every call in progress: a direct call is refused too, and the other way round.
        direct = await client.post(
            "/api/elevenlabs-signed-url", headers=headers, json={"conversationId": "d1"}
        )
        count("call logs (over the cap, after avatar sessions)")
        assert direct.status_code == 429 and direct.json()["error"]["code"] == "too_many_conversations"
        cid = next(r.json()["conversationId"] for r in answers if r.status_code == 200)
        stopped = await client.post(f"/api/liveavatar/session/{cid}/stop", headers=headers, json={})
        assert stopped.json()["status"] == "ended"
        assert (await start_avatar()).status_code == 200  # an ended call frees its place
        assert provider_sessions(simulator) == 3
        listed = (await client.get("/api/calls?limit=100", headers=headers)).json()
    assert listed["total"] == 3 and sum(c["status"] == "active" for c in listed["calls"]) == 2
