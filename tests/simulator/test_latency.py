"""``talkgate simulator --latency-ms N``: every provider REST round trip and every socket message
either way takes N ms longer, in order, with many messages on the way at once."""

import asyncio
import time

import httpx
import pytest
import websockets

from talkgate.protocol import convai
from talkgate.protocol.liveavatar import Command, DataPacket, token_request
from tests.support.provider_socket import recv_json, signed_url
from tests.support.servers import AGENT_ID, LIVEAVATAR_KEY, SIM_KEY, start_simulator
from tests.support.timing import TIMEOUT

LATENCY_S = 0.25


@pytest.fixture(scope="module")
def lagging():
    sim = start_simulator(latency_s=LATENCY_S)
    yield sim
    sim.stop()


def timed_signed_url(sim) -> float:
    t0 = time.monotonic()
    r = httpx.get(
        f"{sim.http_url}/v1/convai/conversation/get-signed-url",
        params={"agent_id": AGENT_ID},
        headers={"xi-api-key": SIM_KEY},
        timeout=TIMEOUT,
    )
    assert r.status_code == 200
    return time.monotonic() - t0


def test_each_rest_round_trip_takes_the_latency_longer(lagging):
    assert timed_signed_url(lagging) >= LATENCY_S
    t0 = time.monotonic()
    token = httpx.post(
        f"{lagging.http_url}/v1/sessions/token",
        json=token_request("av-1"),
        headers={"X-API-KEY": LIVEAVATAR_KEY},
        timeout=TIMEOUT,
    )
    assert token.status_code == 200 and time.monotonic() - t0 >= LATENCY_S


async def test_socket_messages_take_the_latency_each_way_in_order_and_pipelined(lagging):
    url = await signed_url(lagging)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    # Reading every frame as it comes (max_queue=None), as talkgate does: a client that stops
    # reading would hear the close only behind the frames still on their way.
    async with websockets.connect(url, max_queue=None) as ws:
        assert loop.time() - t0 >= 2 * LATENCY_S  # the opening is a round trip
        assert (await recv_json(ws))["type"] == "conversation_initiation_metadata"
        texts = [f"message {i}" for i in range(8)]
        t0 = loop.time()
        for text in texts:
            await ws.send(convai.UserMessage(text).serialize())
        replies = []
        first_reply_at = None
        while len(replies) < len(texts):
            frame = await recv_json(ws)
            if frame["type"] == "agent_response":
                first_reply_at = first_reply_at or loop.time()
                replies.append(frame["agent_response_event"]["agent_response"])
        assert first_reply_at - t0 >= 2 * LATENCY_S  # there and back
        assert replies == [f"You wrote: {text}" for text in texts]  # in order
        # On the way together, not one after another: eight round trips in well under eight.
        assert loop.time() - t0 < 4 * 2 * LATENCY_S


async def test_the_liveavatar_room_socket_lags_too(lagging):
    async with httpx.AsyncClient(base_url=lagging.http_url, timeout=TIMEOUT) as client:
        token = await client.post(
            "/v1/sessions/token", json=token_request("av-1"), headers={"X-API-KEY": LIVEAVATAR_KEY}
        )
        session_token = token.json()["data"]["session_token"]
        started = await client.post(
            "/v1/sessions/start", headers={"Authorization": f"Bearer {session_token}"}
        )
    room = started.json()["data"]
    async with websockets.connect(f"{room['livekit_url']}?token={room['livekit_client_token']}") as ws:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await ws.send(DataPacket("agent-control", Command.START_PTT).serialize())
        ack = DataPacket.parse(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert loop.time() - t0 >= 2 * LATENCY_S
        assert ack.event_type == "user.push_to_talk_started"
