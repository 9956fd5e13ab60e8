"""The public post-call webhook against posts that are not the provider's: refused before their
body is read, bodies not yet verified held on disk rather than in memory, and only so many at once."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time

import httpx
import pytest
import websockets

from talkgate.protocol.signing import webhook_signature_header
from tests.support.audio import encode, speechlike
from tests.support.gate import start_gate
from tests.support.hostile import count
from tests.support.raw_http import raw_post
from tests.support.recordings import start_media_call
from tests.support.timing import wait_until

SECRET = "whsec_hostile_0123456789"
PATH = "/api/elevenlabs/webhook"
MiB = 1024 * 1024
SPOOL_IN_MEMORY = MiB  # webhook_intake.SPOOL_IN_MEMORY (not imported: the test also runs on old code)


@pytest.fixture
def hook_gate(tmp_path, simulator):
    # A long grace period: these tests hold bodies open on purpose (the minimum rate has its own tests).
    g = start_gate(
        tmp_path, simulator, elevenlabs_webhook_secret=SECRET, webhook_concurrency=2, webhook_rate_grace_s=300
    )
    yield g
    g.server.stop()


def forged(now: float | None = None) -> str:
    """A well-formed, timely header whose MAC is wrong: only the whole body can tell."""
    return f"t={int(now or time.time())},v0={'0' * 64}"


def peak_rss_reset() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM, the peak resident set size


def peak_rss() -> int:
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


@pytest.mark.parametrize(
    "header",
    [None, "garbage", "t=abc,v0=00", f"t={int(time.time()) - 31 * 60},v0={'0' * 64}", "v0=00"],
)
async def test_a_post_without_a_valid_signature_header_is_refused_before_its_body(
    hook_gate, header, no_unhandled_errors
):
    headers = {"Content-Length": str(60 * MiB), "Content-Type": "application/json"}
    if header is not None:
        headers["ElevenLabs-Signature"] = header
    # 64 KiB of a declared 60 MiB: the answer must come without the rest.
    post = await raw_post(hook_gate.url + PATH, headers, b"{" + b" " * (64 * 1024))
    try:
        answer = await post.answer()
    finally:
        await post.close()
    count("webhook posts (bad signature header)")
    assert answer.status == 401
    assert answer.json()["error"]["code"] == "unauthorized"


async def test_a_declared_body_over_the_cap_is_refused_before_it_is_read(tmp_path, simulator):
    gate = start_gate(tmp_path, simulator, elevenlabs_webhook_secret=SECRET, max_webhook_bytes=64 * 1024)
    try:
        post = await raw_post(
            gate.url + PATH, {"Content-Length": str(65 * 1024), "ElevenLabs-Signature": forged()}, b"{"
        )
        try:
            answer = await post.answer()
        finally:
            await post.close()
        assert answer.status == 413
        assert answer.json()["error"]["code"] == "request_too_large"
        assert "TALKGATE_MAX_WEBHOOK_BYTES" in answer.json()["error"]["message"]

        async def chunked():  # no Content-Length: cut off as it passes the cap
            for _ in range(20):
                yield b" " * 8192

        async with httpx.AsyncClient(base_url=gate.url) as client:
            r = await client.post(PATH, content=chunked(), headers={"ElevenLabs-Signature": forged()})
        assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
        count("webhook posts (over the cap)", 2)
    finally:
        gate.server.stop()


async def test_unverified_bodies_are_spooled_not_held_in_memory(hook_gate):
    """Two forged 48 MiB posts at once: 96 MiB in flight, the server's memory grows by far less
    (it held both in memory before: over 190 MB, the bytes and their copy)."""
    size = 48 * MiB
    block = b" " * (256 * 1024)

    async def send_forged(peer: str) -> int:  # one unverified body per peer at a time
        post = await raw_post(
            hook_gate.url + PATH, {"Content-Length": str(size), "ElevenLabs-Signature": forged()}, peer=peer
        )
        try:
            for _ in range(size // len(block)):
                await post.send(block)
            answer = await post.answer()
        finally:
            await post.close()
        assert answer.json()["error"]["message"] == "webhook signature does not match"
        return answer.status

    peak_rss_reset()
    before = peak_rss()
    statuses = await asyncio.gather(send_forged("127.0.0.2"), send_forged("127.0.0.3"))
    grown = peak_rss() - before
    count("webhook posts (forged, 48 MiB)", 2)
    assert statuses == [401, 401]
    assert grown < 24 * MiB, f"peak RSS grew by {grown / MiB:.0f} MiB"


async def test_a_signed_body_larger_than_the_memory_spool_arrives_whole(hook_gate):
    padding = "x" * (3 * SPOOL_IN_MEMORY)
    event = {"type": "post_call_transcription", "data": {"conversation_id": "nobody", "pad": padding}}
    body = json.dumps(event).encode()
    header = webhook_signature_header(SECRET.encode(), body, int(time.time()))
    async with httpx.AsyncClient(base_url=hook_gate.url) as client:
        r = await client.post(PATH, content=body, headers={"ElevenLabs-Signature": header})
        assert r.status_code == 200 and r.json() == {"ok": True, "used": False}
        r = await client.post(PATH, content=body + b" ", headers={"ElevenLabs-Signature": header})
        assert r.status_code == 401


async def test_beyond_the_concurrency_limit_a_post_is_refused_at_once(hook_gate, no_unhandled_errors):
    state = hook_gate.app.api.state

    def in_use() -> int:
        slots = getattr(state, "webhook_intake_slots", None)
        return slots.in_use if slots is not None else 0

    held = []
    for peer in ("127.0.0.2", "127.0.0.3"):  # two slow senders: 64 KiB of 10 MiB each, the rest never comes
        held.append(
            await raw_post(
                hook_gate.url + PATH,
                {"Content-Length": str(10 * MiB), "ElevenLabs-Signature": forged()},
                b" " * (64 * 1024),
                peer=peer,
            )
        )
    await wait_until(lambda: in_use() == 2)
    third = await raw_post(
        hook_gate.url + PATH,
        {"Content-Length": str(10 * MiB), "ElevenLabs-Signature": forged()},
        b" ",
        peer="127.0.0.4",
    )
    try:
        answer = await third.answer()
    finally:
        await third.close()
    count("webhook posts (beyond the concurrency limit)")
    assert answer.status == 503
    assert answer.json()["error"]["code"] == "webhook_busy"
    assert answer.headers["retry-after"] == "5"
    assert in_use() == 2  # the held ones still hold their slots

    for post in held:  # senders that give up free their slots
        await post.close()
    await wait_until(lambda: in_use() == 0)
    async with httpx.AsyncClient(base_url=hook_gate.url) as client:
        r = await client.post(PATH, content=b"{}", headers={"ElevenLabs-Signature": forged()})
    assert r.status_code == 401


def signed_event(data: dict) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"type": "post_call_audio", "event_timestamp": int(time.time()), "data": data}).encode()
    return body, {"ElevenLabs-Signature": webhook_signature_header(SECRET.encode(), body, int(time.time()))}


async def test_a_provider_copy_without_audio_is_acknowledged_not_used(hook_gate, caplog):
    # A call without audio gets post_call_audio with an empty full_audio: a 400 made the provider
    # count a failed delivery and retry. It is acknowledged (200, not used) and logged once at INFO;
    # an event that is not a provider event at all is still refused.
    gate, headers = hook_gate, hook_gate.headers()
    async with httpx.AsyncClient(base_url=gate.url) as client:
        signed = await start_media_call(client, gate, "conv_hook_silent")
        async with websockets.connect(signed) as ws:
            meta = json.loads(await ws.recv())  # the conversation starts; nobody speaks
        provider_cid = meta["conversation_initiation_metadata_event"]["conversation_id"]
        await client.post("/api/calls/conv_hook_silent/end", headers=headers)
        unusable = ["", base64.b64encode(b"\xff\xfb" + bytes(5000)).decode(), "!!!notbase64", "AAAA"]
        for full_audio in unusable:
            body, sig = signed_event({"conversation_id": provider_cid, "full_audio": full_audio})
            caplog.clear()
            with caplog.at_level(logging.INFO, logger="talkgate"):
                r = await client.post(PATH, content=body, headers=sig)
            count("post_call_audio without usable audio")
            assert r.status_code == 200 and r.json() == {"ok": True, "used": False}, (full_audio, r.text)
            said = [
                rec
                for rec in caplog.records
                if provider_cid in rec.getMessage() or "not used" in rec.getMessage()
            ]
            assert [rec.levelno for rec in said] == [logging.INFO], [rec.getMessage() for rec in said]
        for malformed in ({"full_audio": ""}, None):
            body, sig = signed_event(malformed)  # type: ignore[arg-type]
            r = await client.post(PATH, content=body, headers=sig)
            count("post_call_audio malformed")
            assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", r.text
        call = (await client.get("/api/calls/conv_hook_silent", headers=headers)).json()
        assert call["audioSource"] is None
        # The provider's real copy, when it comes, is still taken.
        mp3 = base64.b64encode(encode(speechlike(400), "mp3")).decode()
        body, sig = signed_event({"conversation_id": provider_cid, "full_audio": mp3})
        r = await client.post(PATH, content=body, headers=sig)
        assert r.json() == {"ok": True, "used": True}
        call = (await client.get("/api/calls/conv_hook_silent", headers=headers)).json()
    assert call["audioSource"] == "provider" and call["audioBytes"] > 44
