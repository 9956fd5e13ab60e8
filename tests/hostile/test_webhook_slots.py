"""Anonymous senders that try to hold the webhook's slots for unverified bodies, so that the
provider's own deliveries are refused: a well-formed signature header with a random MAC, a huge
Content-Length, a byte or two, then nothing. Raw sockets, each from its own loopback address."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import httpx
import pytest

from talkgate.protocol.signing import webhook_signature_header
from tests.support.gate import start_gate
from tests.support.hostile import count
from tests.support.raw_http import RawRequest, raw_post
from tests.support.timing import wait_until

SECRET = "whsec_hostile_0123456789"
PATH = "/api/elevenlabs/webhook"
HUGE = str(100_000_000)


def forged() -> str:
    return f"t={int(time.time())},v0={'ab' * 32}"


def in_use(gate) -> int:
    slots = getattr(gate.app.api.state, "webhook_intake_slots", None)
    return slots.in_use if slots is not None else 0


async def idle_body(gate, peer: str) -> RawRequest:
    return await raw_post(
        gate.url + PATH, {"Content-Length": HUGE, "ElevenLabs-Signature": forged()}, b"{", peer=peer
    )


async def genuine_delivery(gate) -> httpx.Response:
    body = json.dumps({"type": "post_call_audio", "data": {"conversation_id": "x", "full_audio": ""}})
    header = webhook_signature_header(SECRET.encode(), body.encode(), int(time.time()))
    async with httpx.AsyncClient(base_url=gate.url) as client:
        return await client.post(PATH, content=body, headers={"ElevenLabs-Signature": header})


@pytest.fixture
def patient_gate(tmp_path, simulator):
    """The default total, one body per address, and a grace period long enough that idle bodies
    are still held."""
    g = start_gate(
        tmp_path,
        simulator,
        elevenlabs_webhook_secret=SECRET,
        webhook_concurrency_per_peer=1,
        webhook_rate_grace_s=300,
    )
    yield g
    g.server.stop()


async def test_two_idle_unverified_bodies_do_not_block_the_providers_delivery(patient_gate):
    held = [await idle_body(patient_gate, peer) for peer in ("127.0.0.2", "127.0.0.3")]
    try:
        await wait_until(lambda: in_use(patient_gate) == 2)
        count("webhook posts (idle, holding a slot)", 2)
        r = await genuine_delivery(patient_gate)
        assert r.status_code == 200, r.text
    finally:
        for post in held:
            await post.close()


async def test_one_peer_gets_one_unverified_body_at_a_time(patient_gate, no_unhandled_errors):
    first = await idle_body(patient_gate, "127.0.0.2")
    second = await idle_body(patient_gate, "127.0.0.2")
    other = await idle_body(patient_gate, "127.0.0.3")
    try:
        answer = await second.answer()
        count("webhook posts (idle, same peer)", 3)
        assert answer.status == 503 and answer.headers["retry-after"] == "5"
        assert answer.json()["error"]["code"] == "webhook_busy"
        assert "this address" in answer.json()["error"]["message"]
        await wait_until(lambda: in_use(patient_gate) == 2)  # the first, and the other peer's
    finally:
        for post in (first, second, other):
            await post.close()
    await wait_until(lambda: in_use(patient_gate) == 0)


@pytest.fixture
def brisk_gate(tmp_path, simulator):
    g = start_gate(
        tmp_path,
        simulator,
        elevenlabs_webhook_secret=SECRET,
        webhook_concurrency=2,
        webhook_rate_grace_s=0.5,
        webhook_min_rate_kib_s=32,
    )
    yield g
    g.server.stop()


async def test_an_idle_body_is_cut_off_and_frees_its_slot(brisk_gate, no_unhandled_errors):
    post = await idle_body(brisk_gate, "127.0.0.2")
    try:
        answer = await post.answer()
    finally:
        await post.close()
    count("webhook posts (idle)")
    assert answer.status == 408
    assert answer.json()["error"]["code"] == "request_too_slow"
    assert "TALKGATE_WEBHOOK_MIN_RATE_KIB_S" in answer.json()["error"]["message"]
    await wait_until(lambda: in_use(brisk_gate) == 0)
    assert (await genuine_delivery(brisk_gate)).status_code == 200


async def test_a_trickled_body_is_cut_off(brisk_gate, no_unhandled_errors):
    """A byte every 20 ms keeps the connection busy, far below 32 KiB/s."""
    post = await idle_body(brisk_gate, "127.0.0.2")

    async def trickle() -> None:
        with contextlib.suppress(OSError):
            while True:
                await post.send(b" ")
                await asyncio.sleep(0.02)

    trickler = asyncio.create_task(trickle())
    try:
        answer = await post.answer()
    finally:
        trickler.cancel()
        await post.close()
    count("webhook posts (trickled)")
    assert answer.status == 408 and answer.json()["error"]["code"] == "request_too_slow"
    await wait_until(lambda: in_use(brisk_gate) == 0)
