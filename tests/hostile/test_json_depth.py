"""Deeply nested JSON to every POST route: a 400 ``bad_request`` that says so, never a 500 (json.loads
recurses once per level: 100 000 levels were a RecursionError)."""

from __future__ import annotations

import time

import httpx
import pytest

from talkgate.protocol.signing import webhook_signature_header
from tests.support.gate import start_gate
from tests.support.hostile import count
from tests.support.timing import scaled

SECRET = "whsec_depth_0123456789"
DEEP = 100_000
PAYLOADS = {
    "arrays": b"[" * DEEP + b"]" * DEEP,
    "objects": b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "in a body model": b'{"metadata":' + b'{"a":' * DEEP + b"1" + b"}" * DEEP + b"}",
    "unclosed": b"[" * DEEP,
}


@pytest.fixture
def hook_gate(tmp_path, simulator):
    g = start_gate(tmp_path, simulator, elevenlabs_webhook_secret=SECRET, media_streaming=False)
    yield g
    g.server.stop()


def post_routes(gate) -> list[str]:
    """Every POST route the OpenAPI document lists (each of talkgate's is listed)."""
    return sorted(path for path, ops in gate.app.api.openapi()["paths"].items() if "post" in ops)


def assert_too_deep(r: httpx.Response, what: str) -> None:
    assert r.status_code == 400, (what, r.status_code, r.text[:200])
    error = r.json()["error"]
    assert error["code"] == "bad_request", what
    assert "nested too deeply" in error["message"], what


async def test_deep_json_is_a_400_on_every_post_route(hook_gate, no_unhandled_errors):
    gate = hook_gate
    routes = post_routes(gate)
    assert len(routes) >= 10, routes  # the enumeration found the routes
    async with httpx.AsyncClient(base_url=gate.url, timeout=scaled(30)) as client:
        r = await client.post(
            "/api/elevenlabs-signed-url", headers=gate.headers(), json={"conversationId": "conv_deep"}
        )
        assert r.status_code == 200, r.text
        for route in routes:
            path = route.replace("{conversation_id}", "conv_deep")
            for name, payload in PAYLOADS.items():
                for content_type in ("application/json", None):
                    headers = gate.headers()
                    if content_type:
                        headers["content-type"] = content_type
                    elif route.endswith("/chunks"):
                        continue  # without a content type, chunks are raw audio, not JSON
                    if route == "/api/elevenlabs/webhook":
                        headers["ElevenLabs-Signature"] = webhook_signature_header(
                            SECRET.encode(), payload, int(time.time())
                        )
                    r = await client.post(path, content=payload, headers=headers)
                    count("deep JSON bodies")
                    assert_too_deep(r, f"{route} {name} {content_type}")


async def test_json_at_the_depth_limit_still_parses(hook_gate):
    gate = hook_gate
    limit = gate.settings.max_json_depth
    async with httpx.AsyncClient(base_url=gate.url) as client:
        r = await client.post(
            "/conversation/start-session", headers=gate.headers(), json={"metadata": {"k": "[[[[" * 50}}
        )
        assert r.status_code == 200, r.text  # brackets in strings do not count
        r = await client.post("/api/calls/nope/end", headers=gate.headers(), content=b"[" * 40 + b"]" * 40)
        assert_too_deep(r, "just over")
        r = await client.post(
            "/api/calls/nope/end", headers=gate.headers(), content=b"[" * limit + b"]" * limit
        )
        assert r.status_code == 404  # at the limit: through to the route
