"""talkgate's Engine.IO websocket read loop (talkgate/fastpaths/engine_loop.py), over real sockets: a plain
python-socketio server with the loop installed, driven by raw Engine.IO frames. With
TALKGATE_FASTPATHS=off (``make test``'s second pass) the same tests hold for python-engineio's loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import socketio
import websockets

from talkgate.fastpaths import engine_loop as engine
from talkgate.serving import ServerThread
from talkgate.settings import Settings
from tests.support.timing import TIMEOUT, wait_until

FASTPATHS = Settings(_env_file=None).fastpaths  # type: ignore[call-arg]
# What talkgate's loop does better than python-engineio 4.15's own: with fast paths off, not so.
loop_only = pytest.mark.skipif(not FASTPATHS, reason="talkgate's loop only (TALKGATE_FASTPATHS=off)")


class Server:
    def __init__(self, **engineio_options: Any) -> None:
        self.sio = socketio.AsyncServer(async_mode="asgi", async_handlers=False, **engineio_options)
        installed = engine.install(self.sio.eio) if FASTPATHS else engine.guard(self.sio.eio)
        assert installed, "python-engineio's driver table changed"
        self.disconnects: list[str] = []

        @self.sio.on("echo")
        async def echo(sid: str, data: Any) -> Any:
            return data

        @self.sio.on("boom")
        async def boom(sid: str, data: Any) -> None:
            raise RuntimeError("a handler's bug")

        @self.sio.on("kick")
        async def kick(sid: str, data: Any) -> None:
            # What the server's shutdown does to every socket: Engine.IO's own close.
            await self.sio.eio.disconnect(self.sio.manager.eio_sid_from_sid(sid, "/"))

        @self.sio.event
        async def disconnect(sid: str, reason: Any = None) -> None:
            self.disconnects.append(str(reason))

        self.thread = ServerThread(socketio.ASGIApp(self.sio)).start()


@pytest.fixture
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    s = Server(**getattr(request, "param", {}))
    yield s
    s.thread.stop()


class Client:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.acks = 0

    @classmethod
    async def open(cls, server: Server) -> Client:
        ws = await websockets.connect(f"{server.thread.ws_url}/socket.io/?EIO=4&transport=websocket")
        assert (await ws.recv()).startswith("0{")
        await ws.send("40")
        assert (await ws.recv()).startswith("40{")
        return cls(ws)

    async def emit(self, event: str, data: Any = None) -> int:
        self.acks += 1
        await self.ws.send(f"42{self.acks}" + json.dumps([event, data]))
        return self.acks

    async def frames_until_closed(self) -> list[str]:
        frames: list[str] = []
        async with asyncio.timeout(TIMEOUT):
            try:
                while True:
                    frames.append(await self.ws.recv())
            except websockets.ConnectionClosed:
                return frames


@pytest.fixture
async def client(server: Server) -> AsyncIterator[Client]:
    c = await Client.open(server)
    yield c
    await c.ws.close()


async def test_events_in_order_and_a_failing_handler_leaves_the_socket_open(client: Client) -> None:
    sent = [await client.emit("echo", {"n": n}) for n in range(100)]
    await client.emit("boom")
    sent.append(await client.emit("echo", {"n": 100}))
    got = []
    async with asyncio.timeout(TIMEOUT):
        while len(got) < len(sent):
            frame = await client.ws.recv()
            if frame.startswith("43"):
                got.append(frame)
    expected = [f"43{ack}" + json.dumps([{"n": n}], separators=(",", ":")) for n, ack in enumerate(sent)]
    assert [g.replace(" ", "") for g in got] == expected


@loop_only  # python-engineio's loop ends the websocket only at its next read timeout
async def test_a_server_side_close_is_sent_and_ends_the_websocket(server: Server, client: Client) -> None:
    await client.emit("kick")
    frames = await client.frames_until_closed()
    assert frames[-1] == "1"  # Engine.IO's CLOSE, then the websocket's close
    assert server.disconnects == ["server disconnect"]


@loop_only  # python-engineio reports a "transport close" after a longer wait
@pytest.mark.parametrize("server", [{"ping_interval": 0.2, "ping_timeout": 0.3}], indirect=True)
async def test_a_client_that_stops_answering_pings_is_dropped(server: Server, client: Client) -> None:
    frames = await client.frames_until_closed()  # this client never answers "2" with "3"
    assert frames == ["2"]  # python-engineio drops the CLOSE of a ping timeout; the close follows
    assert server.disconnects == ["ping timeout"]


@pytest.mark.parametrize("server", [{"max_http_buffer_size": 1000}], indirect=True)
async def test_an_oversized_message_ends_that_connection_only(server: Server) -> None:
    big, other = await Client.open(server), await Client.open(server)
    await big.emit("echo", "x" * 2000)
    await big.frames_until_closed()
    ack = await other.emit("echo", "still here")
    async with asyncio.timeout(TIMEOUT):
        assert await other.ws.recv() == f'43{ack}["still here"]'
    await other.ws.close()


def test_install_leaves_an_unexpected_driver_alone() -> None:
    sio = socketio.AsyncServer(async_mode="asgi")
    sio.eio._async = {**sio.eio._async, "websocket": object}
    assert engine.install(sio.eio) is False
    assert sio.eio._async["websocket"] is object


async def test_a_socket_upgraded_from_long_polling_keeps_the_librarys_loop(server: Server) -> None:
    client = socketio.AsyncClient()
    await client.connect(server.thread.http_url, transports=["polling", "websocket"], wait_timeout=TIMEOUT)
    try:
        async with asyncio.timeout(TIMEOUT):
            while client.transport() != "websocket":  # noqa: ASYNC110 - the upgrade has no event
                await asyncio.sleep(0.01)
            assert await client.call("echo", {"n": 1}) == {"n": 1}
    finally:
        await client.disconnect()


async def test_a_bad_frame_on_the_librarys_loop_closes_that_socket_with_one_short_line(
    server: Server, caplog
) -> None:
    import httpx

    caplog.set_level(logging.INFO)
    base = "/socket.io/?EIO=4"
    async with httpx.AsyncClient(base_url=server.thread.http_url, timeout=TIMEOUT) as http:
        sid = json.loads((await http.get(f"{base}&transport=polling")).text[1:])["sid"]
        assert (await http.post(f"{base}&transport=polling&sid={sid}", content=b"40")).is_success
        assert (await http.get(f"{base}&transport=polling&sid={sid}")).text.startswith("40")
        async with websockets.connect(f"{server.thread.ws_url}{base}&transport=websocket&sid={sid}") as ws:
            await ws.send("2probe")
            assert await ws.recv() == "3probe"
            await ws.send("5")  # upgraded: python-engineio's own loop reads this websocket
            await ws.send("x")  # no Engine.IO packet type
            async with asyncio.timeout(TIMEOUT):
                with contextlib.suppress(websockets.ConnectionClosed):
                    while True:
                        await ws.recv()
    await wait_until(lambda: server.disconnects)
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert [r.getMessage() for r in caplog.records if r.name == "talkgate.engine"] == [
        f"socket {sid}: bad frame, closed (ValueError: invalid literal for int() with base 10: 'x')"
    ]
