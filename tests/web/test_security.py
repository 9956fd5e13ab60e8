"""Security by default: every route not on a short public list needs a valid token; browsers from
other origins are refused unless configured; request and message sizes are capped."""

from __future__ import annotations

import asyncio
import json
import re

import httpx
import pytest
import websockets

from tests.support.gate import PUBLIC, connect, start_gate
from tests.support.timing import TIMEOUT


async def every_route(gate) -> list[tuple[str, str]]:
    """The routes of talkgate's OpenAPI document (every route is in it unless it opts out, and
    those that opt out are all on the public list)."""
    async with httpx.AsyncClient(base_url=gate.url) as client:
        spec = (await client.get("/openapi.json")).json()
    return [(m.upper(), path) for path, ops in spec["paths"].items() for m in ops]


async def test_every_route_but_the_public_ones_refuses_missing_expired_and_forged_tokens(gate):
    routes = await every_route(gate)
    guarded = [r for r in routes if r not in PUBLIC]
    assert len(guarded) >= 10
    forged = gate.token().rsplit(".", 1)[0] + ".AAAA"
    other_secret = gate.token().split(".")[0] + ".eyJzdWIiOiJhbGljZSJ9.c2lnbmVkLWVsc2V3aGVyZQ"
    async with httpx.AsyncClient(base_url=gate.url) as client:
        for method, path in guarded:
            url = re.sub(r"\{[^}]+\}", "c1", path)
            for headers, code in (
                ({}, "unauthorized"),
                ({"Authorization": f"Bearer {gate.token(ttl_s=-60)}"}, "token_expired"),
                ({"Authorization": f"Bearer {forged}"}, "token_bad_signature"),
                ({"Authorization": f"Bearer {other_secret}"}, "token_bad_signature"),
                ({"Authorization": "Basic YWxpY2U6cGFzcw=="}, "unauthorized"),
            ):
                r = await client.request(method, url, headers=headers, json={"sessionId": "s1"})
                assert r.status_code == 401, (method, path, headers, r.text)
                assert r.json()["error"]["code"] == code, (method, path, headers, r.text)


async def test_browsers_from_other_origins_are_refused_by_default(gate):
    evil = "https://evil.example"
    async with httpx.AsyncClient(base_url=gate.url) as client:
        preflight = await client.options(
            "/api/calls", headers={"Origin": evil, "Access-Control-Request-Method": "GET"}
        )
        simple = await client.get("/api/calls", headers={"Origin": evil, **gate.headers()})
    assert "access-control-allow-origin" not in preflight.headers
    assert "access-control-allow-origin" not in simple.headers
    # Socket.IO: same origin only; another origin's handshake is refused.
    url = gate.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(url, origin=evil):
            pass
    assert refused.value.response.status_code == 403
    async with websockets.connect(url, origin=gate.url) as ws:  # its own origin is fine
        assert (await ws.recv()).startswith("0")


async def test_configured_origins_and_only_those_are_allowed(tmp_path, simulator):
    app_origin = "https://app.example"
    gate = start_gate(tmp_path, simulator, cors_origins=[app_origin])
    try:
        async with httpx.AsyncClient(base_url=gate.url) as client:
            ok = await client.options(
                "/api/calls",
                headers={
                    "Origin": app_origin,
                    "Access-Control-Request-Method": "GET",
                    "Access-Control-Request-Headers": "authorization",
                },
            )
            other = await client.options(
                "/api/calls",
                headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
            )
        assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == app_origin
        assert "authorization" in ok.headers["access-control-allow-headers"].lower()
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
        url = gate.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        async with websockets.connect(url, origin=app_origin) as ws:
            assert (await ws.recv()).startswith("0")
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(url, origin="https://evil.example"):
                pass
    finally:
        gate.server.stop()


async def test_an_oversized_request_body_is_413_before_any_route_reads_it(gate):
    big = json.dumps({"conversationId": "c1", "metadata": {"x": "y" * 2_000_000}})
    async with httpx.AsyncClient(base_url=gate.url) as client:
        declared = await client.post(
            "/api/elevenlabs-signed-url",
            content=big,
            headers={"Content-Type": "application/json", **gate.headers()},
        )

        async def chunked():  # no Content-Length: counted as it arrives
            for i in range(0, len(big), 65536):
                yield big[i : i + 65536].encode()

        streamed = await client.post(
            "/api/elevenlabs-signed-url",
            content=chunked(),
            headers={"Content-Type": "application/json", **gate.headers()},
        )
        fine = await client.post(
            "/api/elevenlabs-signed-url", json={"conversationId": "c_small"}, headers=gate.headers()
        )
    for r in (declared, streamed):
        assert r.status_code == 413
        assert r.json()["error"] == {
            "code": "request_too_large",
            "message": "request body over the limit of 1048576 bytes",
        }
    assert fine.status_code == 200


async def drain(ws) -> None:
    while True:
        await ws.recv()


async def test_an_oversized_socket_message_closes_only_its_own_socket(gate):
    victim = await connect(gate, "alice")
    try:
        assert (await victim.call("conversation_start"))["ok"]
        url = gate.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        async with websockets.connect(url, max_size=None) as ws:
            await ws.recv()
            await ws.send("40" + json.dumps({"token": gate.token("mallory")}))
            assert (await ws.recv()).startswith("40")
            await ws.send("42" + json.dumps(["send_audio", {"audio": "A" * 1_100_000}]))  # over 1 MB
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(drain(ws), TIMEOUT)
        assert (await victim.call("user_activity_signal"))["ok"]  # the other app goes on
        assert (await victim.call("conversation_end"))["ok"]
    finally:
        await victim.sio.disconnect()
