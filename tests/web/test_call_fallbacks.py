"""Call end without a media stream: the app's chunks, then the provider's copy; the webhook."""

import base64
import json
import time

import httpx
import pytest

from talkgate.protocol.audio import PCM_16000, ULAW_8000, convert
from talkgate.protocol.signing import webhook_signature_header
from talkgate.serving import bind
from tests.support.audio import best_correlation, speechlike
from tests.support.gate import start_gate
from tests.support.recordings import direct_turn, noise, wait_for_call, wav_pcm
from tests.support.servers import start_simulator

WEBHOOK_SECRET = "whsec_test_0123456789"


@pytest.fixture
def plain_gate(tmp_path, simulator):
    """A talkgate that does not ask for media streaming (like one in front of the real provider)."""
    g = start_gate(tmp_path, simulator, media_streaming=False)
    yield g
    g.server.stop()


async def register(client, gate, cid: str) -> dict:
    r = await client.post(
        "/api/elevenlabs-signed-url", headers=gate.headers(), json={"voice": "default", "conversationId": cid}
    )
    assert r.status_code == 200, r.text
    assert r.json()["mediaStreamingEnabled"] is False
    return r.json()


async def test_without_a_media_stream_the_apps_chunks_become_the_recording(plain_gate):
    gate = plain_gate
    first, second = noise(200, seed=10), noise(100, seed=11)
    async with httpx.AsyncClient(base_url=gate.url) as client:
        await register(client, gate, "conv_chunks")
        r = await client.post(
            "/api/calls/conv_chunks/chunks",
            headers={**gate.headers(), "content-type": "application/octet-stream"},
            content=first,
        )
        assert r.json() == {"ok": True, "bytes": len(first), "totalBytes": len(first)}
        ulaw = convert(second, PCM_16000, ULAW_8000)
        r = await client.post(
            "/api/calls/conv_chunks/chunks",
            headers=gate.headers(),
            json={"audio": base64.b64encode(ulaw).decode(), "format": "ulaw_8000"},
        )
        assert r.status_code == 200
        call = (await client.post("/api/calls/conv_chunks/end", headers=gate.headers())).json()
        assert call["audioSource"] == "client_chunks"
        pcm = wav_pcm((await client.get(call["audioUrl"], headers=gate.headers())).content)
    assert pcm == first + convert(ulaw, ULAW_8000, PCM_16000)


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"content": b""}, "empty_audio"),
        ({"content": b"\x01\x02\x03"}, "bad_audio"),
        ({"content": bytes(1024 * 1024 + 2)}, "chunk_too_large"),
        ({"json": {"audio": "not base64!"}}, "bad_base64"),
        ({"json": {"audio": "AAAA", "format": "flac_9"}}, "bad_format"),
        ({"json": {"sound": "AAAA"}}, "bad_request"),
    ],
)
async def test_bad_chunks_get_a_specific_error_and_keep_what_was_saved(plain_gate, kwargs, code):
    gate = plain_gate
    good = noise(50, seed=12)
    async with httpx.AsyncClient(base_url=gate.url) as client:
        await register(client, gate, "conv_bad_chunks")
        await client.post("/api/calls/conv_bad_chunks/chunks", headers=gate.headers(), content=good)
        r = await client.post("/api/calls/conv_bad_chunks/chunks", headers=gate.headers(), **kwargs)
        assert r.status_code == 400 and r.json()["error"]["code"] == code
        call = (await client.post("/api/calls/conv_bad_chunks/end", headers=gate.headers())).json()
        pcm = wav_pcm((await client.get(call["audioUrl"], headers=gate.headers())).content)
    assert pcm == good


UNREACHABLE = "http://127.0.0.1:9"  # a public URL the provider cannot dial: no media stream arrives


async def start_unstreamed_call(client, gate, cid: str) -> str:
    """A media-streaming call whose media socket the provider cannot reach: talkgate knows the
    provider's conversation id (from its answer to the start) but records nothing itself."""
    r = await client.post(
        "/api/elevenlabs-signed-url", headers=gate.headers(), json={"voice": "default", "conversationId": cid}
    )
    assert r.status_code == 200, r.text
    return r.json()["signedUrl"]


async def test_with_nothing_recorded_here_the_providers_recording_is_fetched(tmp_path, simulator):
    # Changed with provider ids owned by talkgate: the provider's copy is fetched only for a
    # conversation the provider started for this call (not for an id the app names afterwards).
    gate = start_gate(tmp_path, simulator, public_url=UNREACHABLE)
    caller = speechlike(500)  # MP3 keeps speech, not white noise
    try:
        async with httpx.AsyncClient(base_url=gate.url) as client:
            signed = await start_unstreamed_call(client, gate, "conv_provider_copy")
            await direct_turn(signed, caller, paced=False)
            call = (await client.post("/api/calls/conv_provider_copy/end", headers=gate.headers())).json()
            assert call["audioSource"] == "provider"
            audio = await client.get("/api/calls/conv_provider_copy/audio", headers=gate.headers())
            pcm = wav_pcm(audio.content)
            assert call["audioBytes"] == len(audio.content)
    finally:
        gate.server.stop()
    r, _ = best_correlation(caller, pcm[: len(caller) + 8000])  # MP3 is lossy: correlation, not bytes
    assert r >= 0.9


@pytest.mark.realtime
async def test_a_call_whose_provider_conversation_talkgate_never_started_gets_no_provider_audio(plain_gate):
    gate = plain_gate
    async with httpx.AsyncClient(base_url=gate.url) as client:
        signed = (await client.get("/conversation/signed-url", headers=gate.headers())).json()["signedUrl"]
        cid, _ = await direct_turn(signed, speechlike(300), paced=False)
        await register(client, gate, cid)  # the app names the provider's id as its call id
        call = (await client.post(f"/api/calls/{cid}/end", headers=gate.headers())).json()
    assert call["audioSource"] is None and call["audioUrl"] is None


async def test_a_direct_call_without_media_streaming_gets_the_provider_copy_of_its_own_conversation(
    plain_gate,
):
    # The signed URL is asked for one conversation (include_conversation_id): the provider names it,
    # talkgate records that id for this user's call, and only that conversation's audio is fetched.
    gate = plain_gate
    caller = speechlike(500)
    async with httpx.AsyncClient(base_url=gate.url) as client:
        signed = (await register(client, gate, "conv_direct_owned"))["signedUrl"]
        other = (await register(client, gate, "conv_direct_other"))["signedUrl"]
        provider_cid, _ = await direct_turn(signed, caller, paced=False)
        assert provider_cid != "conv_direct_owned"
        call = (await client.post("/api/calls/conv_direct_owned/end", headers=gate.headers())).json()
        assert call["audioSource"] == "provider"
        audio = await client.get("/api/calls/conv_direct_owned/audio", headers=gate.headers())
        assert call["audioBytes"] == len(audio.content)
        # A second call whose URL was never opened has no provider conversation: nothing fetched.
        unused = (await client.post("/api/calls/conv_direct_other/end", headers=gate.headers())).json()
        assert unused["audioSource"] is None
    assert other != signed
    r, _ = best_correlation(caller, wav_pcm(audio.content)[: len(caller) + 8000])
    assert r >= 0.9


async def test_the_post_call_audio_webhook_attaches_the_providers_recording(tmp_path):
    sock = bind("127.0.0.1", 0)
    webhook = f"http://127.0.0.1:{sock.getsockname()[1]}/api/elevenlabs/webhook"
    sim = start_simulator(webhook_secret=WEBHOOK_SECRET, webhook_url=webhook)
    gate = start_gate(tmp_path, sim, sock, public_url=UNREACHABLE, elevenlabs_webhook_secret=WEBHOOK_SECRET)
    try:
        caller = speechlike(400)
        async with httpx.AsyncClient(base_url=gate.url) as client:
            signed = await start_unstreamed_call(client, gate, "conv_hooked")
            await direct_turn(signed, caller, paced=False)
            call = await wait_for_call(
                client, "conv_hooked", gate.headers(), lambda c: c["audioUrl"] is not None
            )
            assert call["audioSource"] == "provider"
            audio = await client.get("/api/calls/conv_hooked/audio", headers=gate.headers())
            pcm = wav_pcm(audio.content)
            assert call["audioBytes"] == len(audio.content)
        r, _ = best_correlation(caller, pcm[: len(caller) + 8000])
        assert r >= 0.9
    finally:
        gate.server.stop()
        sim.stop()


async def test_a_webhook_with_a_bad_signature_is_401(tmp_path, simulator):
    gate = start_gate(tmp_path, simulator, elevenlabs_webhook_secret=WEBHOOK_SECRET)
    body = json.dumps(
        {"type": "post_call_audio", "data": {"conversation_id": "c", "full_audio": ""}}
    ).encode()
    now = int(time.time())
    try:
        async with httpx.AsyncClient(base_url=gate.url) as client:
            for header in [
                None,
                "garbage",
                webhook_signature_header(b"another secret", body, now),
                webhook_signature_header(WEBHOOK_SECRET.encode(), body, now - 31 * 60),  # too old
                webhook_signature_header(WEBHOOK_SECRET.encode(), body + b" ", now),  # body changed
            ]:
                headers = {"ElevenLabs-Signature": header} if header else {}
                r = await client.post("/api/elevenlabs/webhook", content=body, headers=headers)
                assert r.status_code == 401, header
            good = webhook_signature_header(WEBHOOK_SECRET.encode(), body, now)
            r = await client.post(
                "/api/elevenlabs/webhook", content=body, headers={"ElevenLabs-Signature": good}
            )
            assert r.status_code == 200 and r.json() == {"ok": True, "used": False}
    finally:
        gate.server.stop()
