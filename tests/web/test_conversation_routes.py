"""The conversation routes: auth on every route, per-user isolation, no key in responses."""

import time

import httpx
import jwt
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
        ("GET", "/api/me"),
    ],
)
async def test_every_route_refuses_missing_expired_and_forged_tokens(gate, route):
    method, path = route
    forged = gate.token().rsplit(".", 1)[0] + ".AAAA"
    async with httpx.AsyncClient(base_url=gate.url) as client:
        for headers, code in (
            ({}, "unauthorized"),
            ({"Authorization": f"Bearer {gate.token(ttl_s=-60)}"}, "token_expired"),
            ({"Authorization": f"Bearer {forged}"}, "token_bad_signature"),
            ({"Authorization": "Bearer not-a-jwt"}, "token_malformed"),
            ({"Authorization": "Basic abc"}, "unauthorized"),
        ):
            r = await client.request(method, path, headers=headers, json={"sessionId": "s1"})
            assert r.status_code == 401 and r.json()["error"]["code"] == code, (headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer"


async def test_a_refused_token_says_what_failed(gate):
    """Expired, not signed with this server's key (even when also expired: the signature is checked
    first), not a JWT, or missing: each its own code and words; /api/me answers who a good one is."""
    expired = gate.token(ttl_s=-60)
    other_key = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, "another-server-" * 3)
    unsigned = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, None, algorithm="none")
    cases = {
        None: ("unauthorized", "missing bearer token"),
        expired: ("token_expired", "token has expired"),
        expired.rsplit(".", 1)[0] + ".AAAA": ("token_bad_signature", "not signed with this server's key"),
        other_key: ("token_bad_signature", "not signed with this server's key"),
        unsigned: ("token_bad_signature", "not signed with this server's key"),
        "abc.def": ("token_malformed", "not a readable JWT"),
        gate.token()[:-30] + "%%%": ("token_malformed", "not a readable JWT"),
    }
    async with httpx.AsyncClient(base_url=gate.url) as client:
        for token, (code, words) in cases.items():
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            r = await client.get("/api/me", headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == code, (token, r.text)
            assert words in r.json()["error"]["message"], r.text
        me = await client.get("/api/me", headers=gate.headers("alice"))
        assert me.status_code == 200 and me.json()["userId"] == "alice"
        assert me.json()["expiresAt"] > time.time() + 3600


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
