"""The provider key and the JWT secret appear in no response, socket event, page or log line."""

import base64
import logging

import httpx
import pytest

from tests.support.gate import JWT_SECRET, connect
from tests.support.recordings import direct_turn, noise
from tests.support.servers import SIM_KEY

SECRETS = (SIM_KEY, JWT_SECRET)


@pytest.mark.realtime
async def test_a_full_run_leaks_no_secret(gate, caplog):
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    async with httpx.AsyncClient(base_url=gate.url) as client:

        async def req(method: str, path: str, **kw) -> httpx.Response:
            r = await client.request(method, path, **kw)
            seen.append(f"{r.status_code} {r.headers} {r.text if 'audio' not in path else ''}")
            return r

        h = gate.headers()
        await req("GET", "/healthz")
        await req("GET", "/openapi.json")
        await req("GET", "/docs")
        await req("GET", "/conversation/signed-url", headers=h)
        await req("GET", "/conversation/signed-url", headers={"Authorization": "Bearer nope"})
        await req("POST", "/conversation/start-session", headers=h, json={"sessionId": "s_leak"})
        await req("POST", "/conversation/end-session", headers=h, json={"sessionId": "s_leak"})
        r = await req("POST", "/api/elevenlabs-signed-url", headers=h, json={"conversationId": "conv_leak"})
        await direct_turn(r.json()["signedUrl"], noise(200, seed=41), paced=False)
        await req("POST", "/api/calls/conv_leak/chunks", headers=h, content=b"\x01")
        await req("POST", "/api/calls/conv_leak/end", headers=h)
        await req("GET", "/api/calls", headers=h)
        await req("GET", "/api/calls/conv_leak", headers=h)
        await req("GET", "/api/calls/conv_leak/audio", headers=h)
        await req("POST", "/api/elevenlabs/webhook", content=b"{}")

    app = await connect(gate)
    await app.call("conversation_start", {"voice": "default"})
    await app.call("user-audio-start")
    await app.call("send_audio", {"audio": base64.b64encode(noise(100, seed=42)).decode()})
    await app.call("send_audio", {"audio": "%%%"})
    await app.call("user-audio-end")
    await app.call("conversation_end")
    await app.sio.disconnect()
    seen.extend(repr(payload) for _, payload in app.events)

    seen.extend(record.getMessage() for record in caplog.records)
    assert len(caplog.records) > 10 and len(seen) > 30
    for secret in SECRETS:
        leaks = [line for line in seen if secret in line]
        assert not leaks, leaks[:3]
