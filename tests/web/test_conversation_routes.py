"""The conversation routes: auth on every route, per-user isolation, no key in responses."""

import httpx
import pytest
import websockets

from tests.support.provider_socket import recv_json
from tests.support.servers import SIM_KEY


async def test_signed_url_works_and_never_carries_the_key(gate):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        r = await client.get("/conversation/signed-url", params={"voice": "female"}, headers=gate.headers())
        assert r.status_code == 200
        assert SIM_KEY not in r.text and "xi-api-key" not in r.text
        assert (
            await client.get("/conversation/signed-url", params={"voice": "robot"}, headers=gate.headers())
        ).status_code == 422
    async with websockets.connect(r.json()["signedUrl"]) as ws:  # the browser's direct mode
        assert (await recv_json(ws))["type"] == "conversation_initiation_metadata"


@pytest.mark.parametrize(
    "route",
    [
        ("GET", "/conversation/signed-url"),
        ("POST", "/conversation/start-session"),
        ("POST", "/conversation/end-session"),
        ("POST", "/api/elevenlabs-signed-url"),
        ("GET", "/api/calls"),
        ("GET", "/api/calls/c1"),
        ("GET", "/api/calls/c1/audio"),
        ("POST", "/api/calls/c1/end"),
        ("POST", "/api/calls/c1/chunks"),
    ],
)
async def test_every_route_refuses_missing_expired_and_forged_tokens(gate, route):
    method, path = route
    forged = gate.token().rsplit(".", 1)[0] + ".AAAA"
    async with httpx.AsyncClient(base_url=gate.url) as client:
        for headers in (
            {},
            {"Authorization": f"Bearer {gate.token(ttl_s=-60)}"},
            {"Authorization": f"Bearer {forged}"},
            {"Authorization": "Basic abc"},
        ):
            r = await client.request(method, path, headers=headers, json={"sessionId": "s1"})
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"


async def test_start_and_end_session_are_per_user_and_idempotent(gate):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        r = await client.post(
            "/conversation/start-session",
            headers=gate.headers("alice"),
            json={"sessionId": "sess_1", "agentId": "agent_x", "metadata": {"page": "home"}},
        )
        assert r.status_code == 200
        row = r.json()
        assert (row["sessionId"], row["status"], row["userId"], row["endedAt"]) == (
            "sess_1",
            "active",
            "alice",
            None,
        )
        assert row["metadata"] == {"page": "home", "agentId": "agent_x"} and row["id"].startswith("c")
        other = await client.post(
            "/conversation/end-session", headers=gate.headers("bob"), json={"sessionId": "sess_1"}
        )
        assert other.status_code == 404
        taken = await client.post(
            "/conversation/start-session", headers=gate.headers("bob"), json={"sessionId": "sess_1"}
        )
        assert taken.status_code == 409
        first = await client.post(
            "/conversation/end-session", headers=gate.headers("alice"), json={"sessionId": "sess_1"}
        )
        again = await client.post(
            "/conversation/end-session", headers=gate.headers("alice"), json={"sessionId": "sess_1"}
        )
        assert first.json()["status"] == "ended" and first.json()["endedAt"]
        assert again.json()["endedAt"] == first.json()["endedAt"]
        generated = await client.post("/conversation/start-session", headers=gate.headers("alice"), json={})
        assert generated.json()["sessionId"]
        for bad in ("../etc/passwd", "a" * 200, "x y"):
            r = await client.post(
                "/conversation/end-session", headers=gate.headers("alice"), json={"sessionId": bad}
            )
            assert r.status_code == 422
