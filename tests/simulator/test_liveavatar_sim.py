"""The simulator's LiveAvatar REST and data-channel stand-in."""

import asyncio
import json

import httpx
import pytest
import websockets

from talkgate.protocol.liveavatar import TRACK_TOPIC, Command, DataPacket, TrackEvent, token_request
from tests.support.audio import speechlike
from tests.support.servers import LIVEAVATAR_KEY as KEY
from tests.support.timing import TIMEOUT


async def open_session(sim, interactivity="PUSH_TO_TALK"):
    async with httpx.AsyncClient(base_url=sim.http_url) as client:
        body = token_request("av-1", voice_id="v", context_id="c") | {"interactivity_type": interactivity}
        token = await client.post("/v1/sessions/token", json=body, headers={"X-API-KEY": KEY})
        assert token.status_code == 200 and token.json()["code"] == 1000
        data = token.json()["data"]
        start = await client.post(
            "/v1/sessions/start", headers={"Authorization": f"Bearer {data['session_token']}"}
        )
        assert start.status_code == 201
        return data, start.json()["data"]


async def test_rest_envelopes_and_auth(simulator):
    async with httpx.AsyncClient(base_url=simulator.http_url) as client:
        r = await client.post("/v1/sessions/token", json=token_request("a"), headers={"X-API-KEY": "bad"})
        assert r.status_code == 401 and r.json()["data"] is None and r.json()["message"]
        r = await client.post("/v1/sessions/token", json={"mode": "FULL"}, headers={"X-API-KEY": KEY})
        assert r.status_code == 422
        assert (
            await client.post("/v1/sessions/start", headers={"Authorization": "Bearer nope"})
        ).status_code == 401
    data, started = await open_session(simulator)
    assert set(started) >= {"session_id", "livekit_url", "livekit_client_token"}
    async with httpx.AsyncClient(base_url=simulator.http_url) as client:
        alive = await client.post(
            "/v1/sessions/keep-alive", json={"session_id": data["session_id"]}, headers={"X-API-KEY": KEY}
        )
        assert alive.status_code == 200
        missing = await client.post(
            "/v1/sessions/keep-alive", json={"session_id": "x"}, headers={"X-API-KEY": KEY}
        )
        assert missing.status_code == 404
        stop = await client.post(
            "/v1/sessions/stop",
            json={"session_id": data["session_id"], "reason": "USER_CLOSED"},
            headers={"X-API-KEY": KEY},
        )
        assert stop.status_code == 200
        after = await client.post(
            "/v1/sessions/keep-alive", json={"session_id": data["session_id"]}, headers={"X-API-KEY": KEY}
        )
        assert after.status_code == 400


async def recv(ws):
    import asyncio

    return DataPacket.parse(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def test_ptt_commands_are_acknowledged_and_illegal_ones_fail(simulator):
    _, started = await open_session(simulator)
    url = f"{started['livekit_url']}?token={started['livekit_client_token']}"
    async with websockets.connect(url) as ws:
        await ws.send(DataPacket("agent-control", Command.STOP_PTT).serialize())
        assert (await recv(ws)).event_type == "user.push_to_talk_stop_failed"
        await ws.send(bytes(3200))  # outside a window: ignored
        await ws.send(DataPacket("agent-control", Command.START_PTT).serialize())
        assert (await recv(ws)).event_type == "user.push_to_talk_started"
        await ws.send(DataPacket("agent-control", Command.START_PTT).serialize())
        assert (await recv(ws)).event_type == "user.push_to_talk_start_failed"
        await ws.send(b"\x10\x20" * 8000)  # 0.5 s
        await ws.send(DataPacket("agent-control", Command.STOP_PTT).serialize())
        events = [await recv(ws) for _ in range(5)]
        assert [e.event_type for e in events] == [
            "user.push_to_talk_stopped",
            "user.transcription",
            "avatar.speak_started",
            "avatar.transcription",
            "avatar.speak_ended",
        ]
        assert events[1].payload["text"].startswith("[0.50 s")


async def test_a_subscribed_client_gets_the_avatars_picture_and_voice(simulator):
    """Subscribed to the avatar's tracks (as a LiveKit participant is), a client gets the stand-in
    picture and the avatar's voice: what it heard, echoed as binary PCM16 frames while it speaks."""
    _, started = await open_session(simulator)
    heard = speechlike(700)
    async with websockets.connect(f"{started['livekit_url']}?token={started['livekit_client_token']}") as ws:
        await ws.send(DataPacket(TRACK_TOPIC, TrackEvent.SUBSCRIBE).serialize())
        poster = await recv(ws)
        await ws.send(DataPacket("agent-control", Command.START_PTT).serialize())
        assert (await recv(ws)).event_type == "user.push_to_talk_started"
        await ws.send(heard)
        await ws.send(DataPacket("agent-control", Command.STOP_PTT).serialize())
        received: list[str | bytes] = []
        while not received or received[-1] != "avatar.speak_ended":
            message = await asyncio.wait_for(ws.recv(), TIMEOUT)
            received.append(message if isinstance(message, bytes) else DataPacket.parse(message).event_type)
    assert poster.topic == TRACK_TOPIC and poster.event_type == "video_poster"
    assert poster.payload["poster"].startswith("data:image/svg+xml;base64,")
    assert len(poster.payload["poster"]) < 4096
    voice = [m for m in received if isinstance(m, bytes)]
    start = received.index("avatar.speak_started")
    assert received[start + 1 : start + 1 + len(voice)] == voice  # spoken while it speaks
    assert b"".join(voice) == heard and max(len(f) for f in voice) == 3200


async def test_room_refuses_bad_tokens_and_conversational_sessions_fail_ptt(simulator):
    with pytest.raises(websockets.InvalidStatus):
        async with websockets.connect(f"{simulator.ws_url}/_liveavatar/room?token=nope"):
            pass
    _, started = await open_session(simulator, interactivity="CONVERSATIONAL")
    async with websockets.connect(f"{started['livekit_url']}?token={started['livekit_client_token']}") as ws:
        await ws.send(
            json.dumps({"topic": "agent-control", "data": {"event_type": "user.start_push_to_talk"}})
        )
        assert (await recv(ws)).event_type == "user.push_to_talk_start_failed"
