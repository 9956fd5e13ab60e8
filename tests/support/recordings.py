"""Helpers for recording tests: known audio, the provider's side of a direct conversation, WAVs."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import numpy as np
import websockets

from talkgate.protocol.audio import parse_wav_header
from tests.support.servers import SIM_KEY
from tests.support.timing import TIMEOUT

CHUNK_MS = 100


def noise(ms: int, seed: int) -> bytes:
    """Random PCM16 with no zero samples: every placement in a mix can be found exactly."""
    rng = np.random.default_rng(seed)
    values = rng.integers(1000, 9000, 16 * ms) * rng.choice([-1, 1], 16 * ms)
    return values.astype("<i2").tobytes()


def wav_pcm(blob: bytes) -> bytes:
    info = parse_wav_header(blob)
    assert (info.sample_rate, info.channels, info.bits) == (16000, 1, 16)
    assert info.data_offset + info.data_bytes == len(blob)  # the header's sizes are the file's
    return blob[info.data_offset :]


def find(pcm: bytes, segment: bytes, start: int = 0) -> int:
    """Byte offset of ``segment`` in ``pcm`` at a sample boundary, or -1."""
    at = pcm.find(segment, start)
    while at != -1 and at % 2:
        at = pcm.find(segment, at + 1)
    return at


def expected_mix(length: int, placements: list[tuple[int, bytes]]) -> bytes:
    out = np.zeros(length // 2, dtype=np.int32)
    for at, seg in placements:
        s = np.frombuffer(seg, dtype="<i2")
        out[at // 2 : at // 2 + len(s)] += s
    return np.clip(out, -32768, 32767).astype("<i2").tobytes()


async def direct_turn(
    signed_url: str, pcm: bytes, *, paced: bool = True, before_end: Any = None
) -> tuple[str, bytes]:
    """Direct mode: the app talks to the provider's socket itself, one push-to-talk turn
    sent as a microphone would (one 100 ms chunk every 100 ms), then waits for the agent's echo.
    Returns the conversation id and the agent audio received."""
    step = 32 * CHUNK_MS
    agent = bytearray()
    async with websockets.connect(signed_url) as ws:
        meta = json.loads(await ws.recv())
        cid = meta["conversation_initiation_metadata_event"]["conversation_id"]
        await ws.send(json.dumps({"type": "user_message_begin"}))
        for i in range(0, len(pcm), step):
            if paced:
                await asyncio.sleep(CHUNK_MS / 1000)  # the microphone's pace, not a wait for a result
            await ws.send(json.dumps({"user_audio_chunk": base64.b64encode(pcm[i : i + step]).decode()}))
        await ws.send(json.dumps({"type": "end_user_audio"}))
        async with asyncio.timeout(TIMEOUT):
            while len(agent) < len(pcm):
                event = json.loads(await ws.recv())
                if event.get("type") == "audio":
                    agent += base64.b64decode(event["audio_event"]["audio_base_64"])
                elif event.get("type") == "ping":
                    eid = event["ping_event"]["event_id"]
                    await ws.send(json.dumps({"type": "pong", "event_id": eid}))
        if before_end is not None:
            await before_end(cid)
    return cid, bytes(agent)


async def wait_for_call(
    client: httpx.AsyncClient, cid: str, headers: dict[str, str], pred: Any
) -> dict[str, Any]:
    """Poll the call log until ``pred`` holds (a state another process or the provider changes)."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            r = await client.get(f"/api/calls/{cid}", headers=headers)
            if r.status_code == 200 and pred(r.json()):
                return r.json()
            await asyncio.sleep(0.05)


async def start_media_call(client: httpx.AsyncClient, gate, cid: str, user: str = "alice") -> str:
    r = await client.post(
        "/api/elevenlabs-signed-url",
        headers=gate.headers(user),
        json={"voice": "default", "conversationId": cid},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["conversationId"] == cid and body["mediaStreamingEnabled"] is True
    assert SIM_KEY not in r.text
    return body["signedUrl"]
