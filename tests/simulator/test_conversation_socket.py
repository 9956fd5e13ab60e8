"""The simulator's ElevenLabs conversation socket and REST, over real sockets."""

import asyncio
import base64
import json
import time
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pytest
import websockets

from talkgate.protocol import convai
from tests.support.provider_socket import audio_of, frames_of, recv_json, recv_until, signed_url
from tests.support.servers import AGENT_ID, SIM_KEY, start_simulator
from tests.support.timing import TIMEOUT


def speech(ms: int) -> bytes:
    return (np.sin(np.arange(16 * ms) / 4) * 9000).astype("<i2").tobytes()


async def test_signed_url_needs_the_key_and_an_agent(simulator):
    url = f"{simulator.http_url}/v1/convai/conversation/get-signed-url"
    async with httpx.AsyncClient() as client:
        assert (await client.get(url, params={"agent_id": "a"})).status_code == 401
        assert (
            await client.get(url, params={"agent_id": "a"}, headers={"xi-api-key": "wrong"})
        ).status_code == 401
        missing = await client.get(url, headers={"xi-api-key": SIM_KEY})
        assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["query", "agent_id"]
        ok = await client.get(url, params={"agent_id": "a"}, headers={"xi-api-key": SIM_KEY})
        token = await client.get(
            f"{simulator.http_url}/v1/convai/conversation/token",
            params={"agent_id": "a"},
            headers={"xi-api-key": SIM_KEY},
        )
    signed = urlparse(ok.json()["signed_url"])
    assert signed.scheme == "ws" and signed.path == "/v1/convai/conversation"
    assert set(parse_qs(signed.query)) == {"agent_id", "conversation_signature"}
    assert token.status_code == 200 and token.json()["token"]


async def test_ptt_conversation_with_seed_dialect_echoes_bytes_and_logs_frames(simulator):
    async with websockets.connect(await signed_url(simulator)) as ws:
        meta = await recv_json(ws)
        assert meta["type"] == "conversation_initiation_metadata"
        cid = meta["conversation_initiation_metadata_event"]["conversation_id"]
        await ws.send(convai.ConversationInitiationClientData(dynamic_variables={"n": 1}).serialize())
        sent = [speech(100), speech(60)]
        await ws.send(convai.UserMessageBegin().serialize())
        for part in sent:
            await ws.send(convai.UserAudioChunk(base64.b64encode(part).decode()).serialize())
        await ws.send(convai.EndUserAudio().serialize())
        frames = await recv_until(ws, "audio")
        assert [f["type"] for f in frames] == ["user_transcript", "agent_response", "audio"]
        rest = [await recv_json(ws)]  # 160 ms = two 100 ms frames
        assert audio_of(frames + rest) == b"".join(sent)
    log = await frames_of(simulator, cid)
    kinds = [f.get("type", "user_audio_chunk" if "user_audio_chunk" in f else "?") for f in log["frames"]]
    assert kinds == [
        "conversation_initiation_client_data",
        "user_message_begin",
        "user_audio_chunk",
        "user_audio_chunk",
        "end_user_audio",
    ]


async def test_pings_carry_increasing_ids_and_pongs_are_logged():
    sim = start_simulator(ping_interval_s=0.05)
    try:
        async with websockets.connect(await signed_url(sim)) as ws:
            meta = json.loads(await ws.recv())
            ids = []
            while len(ids) < 3:
                frame = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
                assert frame["type"] == "ping"
                ids.append(frame["ping_event"]["event_id"])
                await ws.send(convai.Pong(ids[-1]).serialize())
        assert ids == [1, 2, 3]
        log = await frames_of(sim, meta["conversation_initiation_metadata_event"]["conversation_id"])
        assert [f["event_id"] for f in log["frames"]] == [1, 2, 3]
    finally:
        sim.stop()


@pytest.mark.parametrize(
    ("frame", "error_type"),
    [
        ("{not json", "invalid_message"),
        ('{"user_audio_chunk":"%%%not-base64"}', "invalid_message"),
        ('{"type":"contextual_update","context":"a known spelling"}', "invalid_message"),
    ],
)
async def test_bad_frames_get_an_error_then_close_1008_and_others_carry_on(simulator, frame, error_type):
    bystander = await websockets.connect(await signed_url(simulator))
    await recv_json(bystander)
    async with websockets.connect(await signed_url(simulator)) as ws:
        await recv_json(ws)
        await ws.send(frame)
        error = await recv_json(ws)
        assert error["type"] == "error" and error["error_event"]["error_type"] == error_type
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        assert closed.value.rcvd.code == 1008
    await bystander.send(convai.UserMessage("still there?").serialize())
    assert (await recv_json(bystander))["agent_response_event"]["agent_response"] == "You wrote: still there?"
    await bystander.close()


@pytest.mark.parametrize("tamper", ["signature", "agent", "missing"])
async def test_wrong_or_missing_signature_is_refused_with_1008(simulator, tamper):
    url = await signed_url(simulator)
    if tamper == "signature":
        url = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
    elif tamper == "agent":
        url = url.replace(f"agent_id={AGENT_ID}", "agent_id=other")
    else:
        url = url.split("&conversation_signature")[0]
    async with websockets.connect(url) as ws:
        error = await recv_json(ws)
        assert error["error_event"]["error_type"] == "authorization_error"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd.code == 1008


async def test_expired_signed_url_is_refused():
    sim = start_simulator(signed_url_ttl_s=-1)
    try:
        async with websockets.connect(await signed_url(sim)) as ws:
            error = await recv_json(ws)
            assert "expired" in error["error_event"]["message"]
    finally:
        sim.stop()


async def test_public_agent_connects_without_signature():
    sim = start_simulator(public_agent_ids=frozenset({"pub"}))
    try:
        async with websockets.connect(f"{sim.ws_url}/v1/convai/conversation?agent_id=pub") as ws:
            assert (await recv_json(ws))["type"] == "conversation_initiation_metadata"
    finally:
        sim.stop()


@pytest.mark.realtime
async def test_no_input_closes_1002_and_inactivity_timeout_param_is_honoured_in_lenient_mode():
    sim = start_simulator(input_timeout_s=0.3)
    try:
        async with websockets.connect(await signed_url(sim)) as ws:
            await recv_json(ws)
            start = time.monotonic()
            error = await recv_json(ws)
            assert error["error_event"]["error_type"] == "transport_receive_timeout"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1002
            assert time.monotonic() - start >= 0.25
        # inactivity_timeout=1 (seconds) overrides the configured 0.3 s: still open after 0.5 s.
        async with websockets.connect(await signed_url(sim) + "&inactivity_timeout=1") as ws:
            await recv_json(ws)
            await asyncio.sleep(0.5)  # longer than the configured timeout, shorter than the param
            await ws.send(convai.UserMessage("x").serialize())
            assert (await recv_json(ws))["type"] == "agent_response"
    finally:
        sim.stop()


@pytest.mark.realtime
async def test_max_duration_closes_1000():
    sim = start_simulator(max_duration_s=0.2)
    try:
        async with websockets.connect(await signed_url(sim)) as ws:
            await recv_json(ws)
            assert (await recv_json(ws))["error_event"]["error_type"] == "max_duration_exceeded"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 1000
    finally:
        sim.stop()


async def test_strict_simulator_refuses_seed_dialect_but_takes_the_published_api(strict_simulator):
    async with websockets.connect(await signed_url(strict_simulator)) as ws:
        await recv_json(ws)
        await ws.send(convai.UserMessageBegin().serialize())
        assert (await recv_json(ws))["error_event"]["error_type"] == "invalid_message"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 1008
    async with websockets.connect(await signed_url(strict_simulator)) as ws:
        await recv_json(ws)
        await ws.send(convai.UserActivity().serialize())
        for part in (speech(300), bytes(3200 * 6)):  # speech, then 600 ms of silence: VAD ends the turn
            await ws.send(convai.UserAudioChunk(base64.b64encode(part).decode()).serialize())
        frames = await recv_until(ws, "audio")
        assert frames[0]["type"] == "user_transcript"
        assert frames[0]["user_transcription_event"]["user_transcript"].startswith("[0.30 s")


async def test_recording_api_returns_mp3_of_the_conversation(simulator):
    import io

    import av

    async with websockets.connect(await signed_url(simulator)) as ws:
        cid = (await recv_json(ws))["conversation_initiation_metadata_event"]["conversation_id"]
        await ws.send(convai.UserMessageBegin().serialize())
        await ws.send(convai.UserAudioChunk(base64.b64encode(speech(500)).decode()).serialize())
        await ws.send(convai.EndUserAudio().serialize())
        await recv_until(ws, "audio")
    async with httpx.AsyncClient() as client:
        url = f"{simulator.http_url}/v1/convai/conversations/{cid}/audio"
        assert (await client.get(url)).status_code == 401
        for _ in range(100):  # the server records the end a moment after our close
            r = await client.get(url, headers={"xi-api-key": SIM_KEY})
            if r.status_code == 200:
                break
            await asyncio.sleep(0.02)
        assert r.status_code == 200 and r.headers["content-type"] == "audio/mpeg"
        assert (
            await client.get(
                f"{simulator.http_url}/v1/convai/conversations/nope/audio", headers={"xi-api-key": SIM_KEY}
            )
        ).status_code == 404
    with av.open(io.BytesIO(r.content)) as container:
        samples = sum(f.samples for f in container.decode(audio=0))
    assert abs(samples - 16000) < 2400  # 0.5 s caller + 0.5 s echo, plus encoder padding


async def test_the_browser_clients_subprotocol_is_answered_and_its_bearer_token_signs(simulator):
    """@elevenlabs/client asks for the subprotocol convai (a browser fails an opening answered with
    none) and passes its authorization option as bearer.<token>."""
    async with websockets.connect(await signed_url(simulator), subprotocols=["convai"]) as ws:
        assert ws.subprotocol == "convai"
        assert (await recv_json(ws))["type"] == "conversation_initiation_metadata"
    async with httpx.AsyncClient() as client:
        token = (
            await client.get(
                f"{simulator.http_url}/v1/convai/conversation/token",
                params={"agent_id": AGENT_ID},
                headers={"xi-api-key": SIM_KEY},
            )
        ).json()["token"]
    plain = f"{simulator.ws_url}/v1/convai/conversation?agent_id={AGENT_ID}&source=js_sdk&version=1"
    async with websockets.connect(plain, subprotocols=["convai", f"bearer.{token}"]) as ws:
        assert ws.subprotocol == "convai"
        assert (await recv_json(ws))["type"] == "conversation_initiation_metadata"
    async with websockets.connect(plain, subprotocols=["convai", "bearer.forged"]) as ws:
        assert (await recv_json(ws))["error_event"]["error_type"] == "authorization_error"


async def test_strict_simulator_takes_the_browser_clients_other_published_messages(strict_simulator):
    async with websockets.connect(await signed_url(strict_simulator)) as ws:
        cid = (await recv_json(ws))["conversation_initiation_metadata_event"]["conversation_id"]
        for message in (
            convai.Feedback("like", 1),
            convai.McpToolApprovalResult("mcp_1", True),
            convai.ContextualUpdate("on the cart", "page"),
            convai.MultimodalMessage("hello", ("file_1",)),
        ):
            await ws.send(message.serialize())
        reply = await recv_json(ws)
        assert reply["agent_response_event"]["agent_response"] == "You wrote: hello"
    log = await frames_of(strict_simulator, cid)
    assert [f["type"] for f in log["frames"]] == [
        "feedback",
        "mcp_tool_approval_result",
        "contextual_update",
        "multimodal_message",
    ]


async def test_a_signed_url_for_one_conversation_names_it_in_its_query(simulator):
    """include_conversation_id: the service's reply holds signed_url alone, and the URL's query
    names the conversation, which the socket then opens."""
    async with httpx.AsyncClient() as client:
        reply = await client.get(
            f"{simulator.http_url}/v1/convai/conversation/get-signed-url",
            params={"agent_id": AGENT_ID, "include_conversation_id": "true"},
            headers={"xi-api-key": SIM_KEY},
        )
    assert set(reply.json()) == {"signed_url"}
    url = reply.json()["signed_url"]
    (named,) = parse_qs(urlparse(url).query)["conversation_id"]
    async with websockets.connect(url) as ws:
        meta = await recv_json(ws)
    assert meta["conversation_initiation_metadata_event"]["conversation_id"] == named
