"""Whatever talkgate refuses, the answer is its one error body, ``{"error": {"code", "message"}}``,
never FastAPI's ``{"detail": …}``, and a refusal never echoes more than a few dozen characters of
what was sent (a 900 KB field came back whole)."""

from __future__ import annotations

import httpx

from tests.support.hostile import count

BIG = "x" * 900_000


def assert_error_body(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text[:300]
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, r.text[:300]
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    assert "x" * 50 not in r.text and len(r.content) < 600, r.text[:300]
    return message


async def test_validation_errors_name_the_field_without_echoing_it(gate, no_unhandled_errors):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        r = await client.post("/api/dev/token", json={"user": BIG})
        message = assert_error_body(r, 422, "bad_request")
        assert "user" in message
        r = await client.post("/api/dev/token", json=[BIG])
        assert "body" in assert_error_body(r, 422, "bad_request")
        r = await client.post(
            "/conversation/start-session", json={"sessionId": BIG[:2000]}, headers=gate.headers()
        )
        assert "sessionId" in assert_error_body(r, 422, "bad_request")
        r = await client.get("/api/calls", params={"limit": BIG[:5000]}, headers=gate.headers())
        assert "limit" in assert_error_body(r, 422, "bad_request")
        r = await client.post(
            "/api/dev/token", content=b'{"user": ', headers={"Content-Type": "application/json"}
        )
        assert_error_body(r, 422, "bad_request")
    count("http requests (invalid fields)", 5)


async def test_unknown_routes_other_methods_and_unreadable_bodies(gate, no_unhandled_errors):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        assert_error_body(await client.get("/no/such/route/" + "y" * 3000), 404, "not_found")
        r = await client.get("/api/dev/token")
        assert_error_body(r, 405, "method_not_allowed")
        assert "POST" in r.headers["allow"]
        r = await client.post(
            "/api/dev/token",
            content=b"\xff\xfe\xfa" + b"x" * 100,
            headers={"Content-Type": "application/json"},
        )
        assert r.status_code in (400, 422)
        assert_error_body(r, r.status_code, "bad_request")
    count("http requests (unknown route, wrong method, unreadable body)", 3)
