"""The ElevenLabs conversation socket's send path (talkgate/providers/elevenlabs.py), against a
plain ``websockets`` server on 127.0.0.1 that plays the provider: what it receives, byte for byte,
and what happens when it stops reading."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import websockets
from websockets.asyncio.server import ServerConnection

from talkgate.errors import ProviderError
from talkgate.protocol import convai
from talkgate.providers.elevenlabs import ElevenLabsConversation
from tests.support.timing import TIMEOUT

METADATA = json.dumps(
    {
        "type": "conversation_initiation_metadata",
        "conversation_initiation_metadata_event": {
            "conversation_id": "conv_send_path",
            "agent_output_audio_format": "pcm_16000",
            "user_input_audio_format": "pcm_16000",
        },
    }
)


class Provider:
    """Answers the initiation with metadata, then records every frame; ``stall`` stops it reading
    from the socket until ``resume``."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.reading = asyncio.Event()
        self.reading.set()
        self.conn: ServerConnection | None = None

    async def handler(self, ws: ServerConnection) -> None:
        self.conn = ws
        self.frames.append(str(await ws.recv()))
        await ws.send(METADATA)
        while True:
            await self.reading.wait()
            try:
                self.frames.append(str(await ws.recv()))
            except websockets.ConnectionClosed:
                return

    def stall(self) -> None:
        assert self.conn is not None
        self.reading.clear()
        self.conn.transport.pause_reading()

    def resume(self) -> None:
        assert self.conn is not None
        self.conn.transport.resume_reading()
        self.reading.set()


@pytest.fixture
async def provider() -> AsyncIterator[tuple[Provider, str]]:
    p = Provider()
    async with websockets.serve(p.handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        yield p, f"ws://127.0.0.1:{port}/v1/convai/conversation?agent_id=a"


async def open_conversation(url: str) -> ElevenLabsConversation:
    return await ElevenLabsConversation.open(url, convai.ConversationInitiationClientData(), timeout=TIMEOUT)


def chunk(i: int) -> convai.UserAudioChunk:
    return convai.UserAudioChunk(f"{i:08d}" + "A" * 5456)


async def wait_frames(p: Provider, n: int) -> None:
    async with asyncio.timeout(TIMEOUT):
        while len(p.frames) < n:  # noqa: ASYNC110 - the handler appends; nothing to await
            await asyncio.sleep(0.005)


@pytest.mark.parametrize("direct", [True, False], ids=["direct-write", "library-send"])
async def test_frames_reach_the_provider_in_order_byte_for_byte(
    provider: tuple[Provider, str], direct: bool
) -> None:
    p, url = provider
    conv = await open_conversation(url)
    assert conv._direct, "websockets' connection lacks what the direct write reads"
    conv._direct = direct
    events: list[Any] = [convai.UserMessageBegin(), *(chunk(i) for i in range(50)), convai.EndUserAudio()]
    for event in events:
        await conv.send(event)
    assert conv.last_sent_type == "end_user_audio"
    await wait_frames(p, 1 + len(events))
    assert p.frames[1:] == [e.serialize() for e in events]
    await conv.close()


async def test_a_provider_that_stops_reading_holds_the_sender_instead_of_buffering(
    provider: tuple[Provider, str],
) -> None:
    """Flow control: once the socket's buffers are full, ``send`` waits (the relay's bounded queue
    takes it from there) instead of piling frames up in memory; nothing is lost or reordered."""
    p, url = provider
    conv = await open_conversation(url)
    await wait_frames(p, 1)
    p.stall()
    sent = 0
    pending: asyncio.Task[None] | None = None
    for i in range(20_000):  # 110 MB if nothing ever pushed back
        task = asyncio.create_task(conv.send(chunk(i)))
        for _ in range(3):
            await asyncio.sleep(0)
        sent += 1
        if not task.done():
            pending = task
            break
        task.result()
    assert pending is not None, f"{sent} frames sent and none waited for the provider"
    transport = conv._ws.transport
    assert transport.get_write_buffer_size() < 1024 * 1024
    p.resume()
    async with asyncio.timeout(TIMEOUT):
        await pending
    await wait_frames(p, 1 + sent)
    assert p.frames[1:] == [chunk(i).serialize() for i in range(sent)]
    await conv.close()


async def test_sending_on_a_closed_socket_is_a_provider_error(provider: tuple[Provider, str]) -> None:
    p, url = provider
    conv = await open_conversation(url)
    await wait_frames(p, 1)
    assert p.conn is not None
    await p.conn.close(1011, "gone")
    async for _ in conv.events():
        pass
    with pytest.raises(ProviderError, match="closed"):
        await conv.send(chunk(0))


@pytest.mark.parametrize("answered", [False, True], ids=["refused-unanswered", "answered-first"])
async def test_a_1008_names_the_unanswered_signal_dialect_message_though_audio_went_behind_it(
    answered: bool,
) -> None:
    """A provider that enforces the published spec refuses ``user_message_begin``; by the time its
    close arrives the turn's audio has gone out behind it. The close still names the refused
    message (so the relay can name the setting), unless the provider had answered since."""
    audio_sent = asyncio.Event()

    async def strict(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(METADATA)
        assert json.loads(await ws.recv())["type"] == "user_message_begin"
        await audio_sent.wait()
        if answered:
            await ws.send(convai.UserTranscript("[0.10 s]", 1).serialize())
        await ws.send(convai.ServerError(1008, "invalid_message", "unknown message type").serialize())
        await ws.close(1008, "invalid_message")

    async with websockets.serve(strict, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        conv = await open_conversation(f"ws://127.0.0.1:{port}/v1/convai/conversation?agent_id=a")
        await conv.send(convai.UserMessageBegin())
        for i in range(3):
            await conv.send(chunk(i))
        audio_sent.set()
        async with asyncio.timeout(TIMEOUT):
            async for _ in conv.events():
                pass
    assert conv.closed is not None and conv.closed.code == 1008
    assert conv.closed.last_sent_type == ("user_audio_chunk" if answered else "user_message_begin")
