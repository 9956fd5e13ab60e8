"""Media-stream recording and the post-call webhook, from the simulator to real servers."""

import asyncio
import base64
import json

import httpx
import numpy as np
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from talkgate.protocol import convai
from talkgate.protocol.signing import verify_webhook_signature
from talkgate.serving import running
from tests.support.provider_socket import recv_json, recv_until
from tests.support.servers import AGENT_ID, SIM_KEY, start_simulator
from tests.support.timing import TIMEOUT


def speech(ms: int) -> bytes:
    return (np.sin(np.arange(16 * ms) / 4) * 9000).astype("<i2").tobytes()


async def test_start_with_media_dials_the_socket_and_streams_both_sides_then_call_end(simulator):
    received: list[dict] = []
    done = asyncio.Event()

    async def media_handler(ws):
        assert ws.request.path == "/ws/elevenlabs-media?token=abc"
        async for raw in ws:
            received.append(json.loads(raw))
        done.set()

    async with websockets.serve(media_handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with httpx.AsyncClient() as client:
            r = await client.post(
                f"{simulator.http_url}/v1/convai/conversation/start",
                headers={"xi-api-key": SIM_KEY},
                json={
                    "agent_id": AGENT_ID,
                    "conversation_id": "conv_app_1",
                    "media": {
                        "stream": True,
                        "websocket_url": f"ws://127.0.0.1:{port}/ws/elevenlabs-media?token=abc",
                    },
                },
            )
            assert r.status_code == 200
            body = r.json()
            assert body["conversation_id"] == "conv_app_1" and body["media_streaming"] is True
            bad = await client.post(
                f"{simulator.http_url}/v1/convai/conversation/start",
                headers={"xi-api-key": SIM_KEY},
                json={"agent_id": AGENT_ID, "media": {"stream": True, "websocket_url": "http://x"}},
            )
            assert bad.status_code == 422
        said = speech(200)
        async with websockets.connect(body["signed_url"]) as ws:
            meta = await recv_json(ws)
            assert meta["conversation_initiation_metadata_event"]["conversation_id"] == "conv_app_1"
            await ws.send(convai.UserMessageBegin().serialize())
            await ws.send(convai.UserAudioChunk(base64.b64encode(said).decode()).serialize())
            await ws.send(convai.EndUserAudio().serialize())
            await recv_until(ws, "audio")
            await recv_json(ws)
        await asyncio.wait_for(done.wait(), TIMEOUT)
    kinds = [m["type"] for m in received]
    assert kinds == ["audio_input", "audio_output", "audio_output", "call_end"]
    assert {m["conversation_id"] for m in received} == {"conv_app_1"}
    assert base64.b64decode(received[0]["audio"]) == said
    assert b"".join(base64.b64decode(m["audio"]) for m in received[1:3]) == said


async def test_post_call_webhooks_are_signed_like_elevenlabs_transcription_then_audio():
    got: list[tuple[bytes, str | None]] = []
    arrived = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def hook(request: Request) -> Response:
        got.append((await request.body(), request.headers.get("elevenlabs-signature")))
        if len(got) == 2:
            loop.call_soon_threadsafe(arrived.set)
        return Response(status_code=200)

    with running(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as receiver:
        sim = start_simulator(webhook_url=f"{receiver.http_url}/hook", webhook_secret="whsec_test_123456")
        try:
            async with httpx.AsyncClient() as client:
                signed = (
                    await client.get(
                        f"{sim.http_url}/v1/convai/conversation/get-signed-url",
                        params={"agent_id": AGENT_ID},
                        headers={"xi-api-key": SIM_KEY},
                    )
                ).json()
            async with websockets.connect(signed["signed_url"]) as ws:
                cid = (await recv_json(ws))["conversation_initiation_metadata_event"]["conversation_id"]
                await ws.send(convai.UserMessage("hello").serialize())
                await recv_until(ws, "audio")
            await asyncio.wait_for(arrived.wait(), TIMEOUT)
        finally:
            sim.stop()
    import time

    for body, header in got:
        verify_webhook_signature(b"whsec_test_123456", body, header, now=time.time())
    transcription, payload = (json.loads(body) for body, _ in got)
    assert transcription["type"] == "post_call_transcription"
    data = transcription["data"]
    assert (data["conversation_id"], data["agent_id"], data["status"]) == (cid, AGENT_ID, "done")
    assert data["transcript"] == [{"role": "agent", "message": "You wrote: hello"}]
    assert data["analysis"]["transcript_summary"] == (
        "0 user turn(s) and 1 agent answer(s); the agent repeated what it heard."
    )
    assert data["analysis"]["call_successful"] == "success"
    assert data["analysis"]["evaluation_criteria_results"]["every_turn_answered"]["result"] == "success"
    assert data["analysis"]["data_collection_results"]["user_turns"]["value"] == 0
    assert data["metadata"]["cost"] == 75.0 and data["metadata"]["call_duration_secs"] >= 0
    assert payload["type"] == "post_call_audio"
    assert payload["data"]["conversation_id"] == cid and payload["data"]["agent_id"] == AGENT_ID
    import io

    import av

    with av.open(io.BytesIO(base64.b64decode(payload["data"]["full_audio"]))) as mp3:
        assert mp3.format.name == "mp3"
        assert sum(f.samples for f in mp3.decode(audio=0)) > 0
