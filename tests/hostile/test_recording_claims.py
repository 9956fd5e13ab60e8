"""Attacker input against recordings: replayed webhooks, reused media-socket URLs, and a user naming
another user's provider conversation id to get its audio through talkgate's key."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest
import websockets

from talkgate.protocol.signing import webhook_signature_header
from talkgate.serving import bind
from talkgate.simulator.mp3 import encode_mp3
from talkgate.web.media import media_url
from tests.support.audio import speechlike
from tests.support.gate import start_gate
from tests.support.hostile import count
from tests.support.recordings import direct_turn, noise, start_media_call, wait_for_call
from tests.support.servers import start_simulator

SECRET = "whsec_hostile_0123456789"
UNREACHABLE = "http://127.0.0.1:9"  # the provider cannot dial the media socket: no stream arrives


async def register(client: httpx.AsyncClient, gate, cid: str, user: str = "alice") -> dict:
    r = await client.post(
        "/api/elevenlabs-signed-url",
        headers=gate.headers(user),
        json={"voice": "default", "conversationId": cid},
    )
    assert r.status_code == 200, r.text
    return r.json()


async def refused(url: str) -> None:
    with pytest.raises(websockets.InvalidStatus) as caught:
        async with websockets.connect(url):
            pass
    assert caught.value.response.status_code == 403


@pytest.mark.realtime
async def test_a_replayed_webhook_changes_nothing(tmp_path, simulator):
    gate = start_gate(tmp_path, simulator, public_url=UNREACHABLE, elevenlabs_webhook_secret=SECRET)
    try:
        async with httpx.AsyncClient(base_url=gate.url) as client:
            signed = (await register(client, gate, "conv_replayed"))["signedUrl"]
            provider_cid, _ = await direct_turn(signed, noise(100, seed=40), paced=False)
            body = json.dumps(
                {
                    "type": "post_call_audio",
                    "event_timestamp": int(time.time()),
                    "data": {
                        "conversation_id": provider_cid,
                        "full_audio": base64.b64encode(encode_mp3(speechlike(300), 16000)).decode(),
                    },
                }
            ).encode()
            key = SECRET.encode()
            header = webhook_signature_header(key, body, int(time.time()))
            hook = "/api/elevenlabs/webhook"
            first = await client.post(hook, content=body, headers={"ElevenLabs-Signature": header})
            assert first.json() == {"ok": True, "used": True}
            before = (await client.get("/api/calls/conv_replayed", headers=gate.headers())).json()
            audio = (await client.get("/api/calls/conv_replayed/audio", headers=gate.headers())).content
            # The same delivery again, and re-signed later: both refused as replays.
            for again in (header, webhook_signature_header(key, body, int(time.time()) + 1)):
                r = await client.post(hook, content=body, headers={"ElevenLabs-Signature": again})
                assert r.status_code == 200
                assert r.json() == {"ok": True, "used": False, "duplicate": True}
                count("webhook replays")
            after = (await client.get("/api/calls/conv_replayed", headers=gate.headers())).json()
            assert after == before and before["audioBytes"] == len(audio)
            again_audio = (await client.get("/api/calls/conv_replayed/audio", headers=gate.headers())).content
            assert again_audio == audio
    finally:
        gate.server.stop()


async def test_a_media_url_is_refused_after_its_call_ended(gate):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        await start_media_call(client, gate, "conv_ended_media")
        await client.post("/api/calls/conv_ended_media/end", headers=gate.headers())
    await refused(media_url(gate.settings, "conv_ended_media"))
    count("media url reuse")
    assert not any(gate.settings.spool_dir.glob("*"))  # nothing was recorded


async def test_a_media_url_records_once(gate):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        await start_media_call(client, gate, "conv_once")
        url = media_url(gate.settings, "conv_once")
        async with websockets.connect(url) as ws:
            await ws.send('{"type":"audio_input","conversation_id":"conv_once","audio":"AAE="}')
            await ws.send('{"type":"call_end","conversation_id":"conv_once"}')
            await ws.wait_closed()
        first = (await client.get("/api/calls/conv_once", headers=gate.headers())).json()
        assert first["audioSource"] == "media_stream"
        await refused(url)  # finalized: a second socket would replace its recording
        count("media url reuse")
        again = (await client.get("/api/calls/conv_once", headers=gate.headers())).json()
        assert again == first


async def test_a_media_url_is_live_in_one_process_only(tmp_path, simulator):
    # Two talkgate processes on one database: the second socket for the call is refused.
    first = start_gate(tmp_path, simulator)
    second = start_gate(tmp_path, simulator)
    try:
        async with httpx.AsyncClient(base_url=first.url) as client:
            await start_media_call(client, first, "conv_twice")
        async with websockets.connect(media_url(first.settings, "conv_twice")) as ws:
            await refused(media_url(second.settings, "conv_twice"))
            count("media url reuse")
            await ws.send('{"type":"call_end","conversation_id":"conv_twice"}')
            await ws.wait_closed()
    finally:
        second.server.stop()
        first.server.stop()


@pytest.mark.realtime
async def test_naming_another_users_provider_conversation_gets_nothing_of_theirs(tmp_path):
    sock = bind("127.0.0.1", 0)
    sim = start_simulator(
        webhook_secret=SECRET, webhook_url=f"http://127.0.0.1:{sock.getsockname()[1]}/api/elevenlabs/webhook"
    )
    gate = start_gate(tmp_path, sim, sock, public_url=UNREACHABLE, elevenlabs_webhook_secret=SECRET)
    try:
        async with httpx.AsyncClient(base_url=gate.url) as client:
            signed = (await register(client, gate, "conv_alice_call"))["signedUrl"]

            async def bob_claims(provider_cid: str) -> None:
                # Bob learned Alice's provider conversation id and names it as his call's id.
                body = await register(client, gate, provider_cid, user="bob")
                assert body["conversationId"] == provider_cid
                count("provider id claims")

            provider_cid, _ = await direct_turn(signed, speechlike(400), paced=False, before_end=bob_claims)
            # The provider's webhook for Alice's conversation reaches Alice's call only.
            alice = await wait_for_call(
                client, "conv_alice_call", gate.headers(), lambda c: c["audioUrl"] is not None
            )
            assert alice["audioSource"] == "provider"
            bob = (await client.post(f"/api/calls/{provider_cid}/end", headers=gate.headers("bob"))).json()
            assert (bob["audioSource"], bob["audioUrl"], bob["audioBytes"]) == (None, None, None)
            r = await client.get(f"/api/calls/{provider_cid}/audio", headers=gate.headers("bob"))
            assert r.status_code == 404
            alice_again = (await client.get("/api/calls/conv_alice_call", headers=gate.headers())).json()
            assert alice_again == alice
    finally:
        gate.server.stop()
        sim.stop()


@pytest.mark.realtime
async def test_naming_the_provider_id_of_another_users_direct_conversation_fetches_nothing(
    tmp_path, simulator
):
    # Alice talks to the agent directly, on a signed URL talkgate got for her with its key.
    gate = start_gate(tmp_path, simulator, media_streaming=False)
    try:
        async with httpx.AsyncClient(base_url=gate.url) as client:
            signed = (await client.get("/conversation/signed-url", headers=gate.headers())).json()[
                "signedUrl"
            ]
            provider_cid, _ = await direct_turn(signed, speechlike(300), paced=False)
            await register(client, gate, provider_cid, user="bob")
            count("provider id claims")
            bob = (await client.post(f"/api/calls/{provider_cid}/end", headers=gate.headers("bob"))).json()
            assert (bob["audioSource"], bob["audioUrl"]) == (None, None)
            r = await client.get(f"/api/calls/{provider_cid}/audio", headers=gate.headers("bob"))
            assert r.status_code == 404
    finally:
        gate.server.stop()
