"""The stored WAV is the best one and the call log describes it: a relay or media-stream call
followed by the provider's real ``post_call_audio`` webhook keeps its own recording, byte for byte."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from talkgate.protocol.audio import parse_wav_header
from talkgate.serving import ServerThread, running
from tests.support.gate import Gate, connect, paced_turn, start_gate
from tests.support.recordings import direct_turn, find, noise, start_media_call, wav_pcm
from tests.support.servers import start_simulator
from tests.support.timing import TIMEOUT

WEBHOOK_SECRET = "whsec_integrity_0123456789"


@dataclass
class WebhookTap:
    """Between the simulator and talkgate: forwards each webhook delivery as it is and keeps
    talkgate's answers to the ``post_call_audio`` ones (the simulator posts its
    ``post_call_transcription`` first), so a test waits for the audio to have been handled."""

    target: str = ""
    answers: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[tuple[bytes, str]] = field(default_factory=list)
    server: ServerThread | None = None

    async def forward(self, request: Request) -> Response:
        body = await request.body()
        signature = request.headers.get("elevenlabs-signature", "")
        self.bodies.append((body, signature))
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            r = await client.post(
                self.target,
                content=body,
                headers={"content-type": "application/json", "ElevenLabs-Signature": signature},
            )
        if json.loads(body)["type"] == "post_call_audio":
            self.answers.append({"status": r.status_code, **r.json()})
        return Response(r.content, status_code=r.status_code, media_type="application/json")

    async def wait(self, count: int = 1) -> list[dict[str, Any]]:
        async with asyncio.timeout(TIMEOUT):
            while len(self.answers) < count:  # noqa: ASYNC110 - the answer arrives on another thread
                await asyncio.sleep(0.02)
        return self.answers


@contextmanager
def webhooked_gate(tmp_path: Any, **overrides: Any) -> Iterator[tuple[Gate, WebhookTap]]:
    tap = WebhookTap()
    with running(Starlette(routes=[Route("/hook", tap.forward, methods=["POST"])])) as proxy:
        sim = start_simulator(webhook_secret=WEBHOOK_SECRET, webhook_url=f"{proxy.http_url}/hook")
        gate = start_gate(tmp_path, sim, elevenlabs_webhook_secret=WEBHOOK_SECRET, **overrides)
        tap.target = f"{gate.url}/api/elevenlabs/webhook"
        try:
            yield gate, tap
        finally:
            gate.server.stop()
            sim.stop()


async def served(gate: Gate, cid: str, user: str = "alice") -> tuple[dict[str, Any], bytes]:
    """The call log and the bytes its audio route and its audio link serve (which must agree)."""
    async with httpx.AsyncClient(base_url=gate.url) as client:
        call = (await client.get(f"/api/calls/{cid}", headers=gate.headers(user))).json()
        audio = await client.get(f"/api/calls/{cid}/audio", headers=gate.headers(user))
        assert audio.status_code == 200
        link = (await client.get(f"/api/calls/{cid}/audio-link", headers=gate.headers(user))).json()
        linked = await client.get(link["url"])
        assert linked.content == audio.content
    return call, audio.content


def stored_objects(gate: Gate) -> list[bytes]:
    """Every object in the gate's recording store (no orphan may be left beside the call's)."""
    root = gate.settings.data_dir / "recordings"
    return [p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()]


@pytest.mark.realtime
async def test_a_relay_call_keeps_its_recording_after_the_providers_webhook(tmp_path):
    clip = noise(400, seed=301)
    with webhooked_gate(tmp_path) as (gate, tap):
        app = await connect(gate)
        try:
            cid = (await app.call("conversation_start"))["conversationId"]
            await paced_turn(app, clip, 1)
            await app.call("conversation_end")
            (ended,) = await app.wait_for("conversation_ended")
        finally:
            await app.sio.disconnect()
        (answer,) = await tap.wait()
        assert answer == {"status": 200, "ok": True, "used": False}  # the relay's is better
        call, wav = await served(gate, cid)
        assert (call["audioSource"], call["audioBytes"]) == ("relay", len(wav))
        assert ended["audioUrl"] == call["audioUrl"]
        pcm = wav_pcm(wav)
        at = find(pcm, clip[:64])
        assert at >= 0 and pcm[at : at + len(clip)] == clip  # the relay's lossless WAV, not an MP3
        # Both sides, caller then echo: at least twice the clip on the recording's timeline.
        assert parse_wav_header(wav).data_bytes >= 2 * len(clip)
        assert stored_objects(gate) == [wav]


@pytest.mark.realtime
async def test_a_media_streamed_call_keeps_its_recording_after_the_providers_webhook(tmp_path):
    caller = noise(400, seed=302)
    with webhooked_gate(tmp_path) as (gate, tap):
        async with httpx.AsyncClient(base_url=gate.url) as client:
            signed = await start_media_call(client, gate, "conv_media_hooked")
            _, agent = await direct_turn(signed, caller)
            (answer,) = await tap.wait()
            assert answer == {"status": 200, "ok": True, "used": False}
            ended = (await client.post("/api/calls/conv_media_hooked/end", headers=gate.headers())).json()
        call, wav = await served(gate, "conv_media_hooked")
        assert ended == call
        assert (call["audioSource"], call["audioBytes"]) == ("media_stream", len(wav))
        pcm = wav_pcm(wav)
        at_caller = find(pcm, caller[:64])
        at_agent = find(pcm, agent[:64], at_caller + len(caller))
        assert at_caller >= 0 and at_agent >= at_caller + len(caller)
        assert len(pcm) == at_agent + len(agent)  # the WAV lasts exactly until the agent's last word
        assert stored_objects(gate) == [wav]
