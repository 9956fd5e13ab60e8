"""A network's latency in front of the simulator (``talkgate simulator --latency-ms N``).

Every provider REST request waits ``seconds`` before it is handled, and every WebSocket message
in either direction (the handshake, frames, the close) arrives ``seconds`` after it was sent.
Messages go through a delay line each way: each waits only for its own due time, so the line
keeps their order and carries any number of them at once, as a network does, and nothing blocks
the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# The simulator's own routes for tests and probes: not the provider's, so not delayed.
UNDELAYED_PREFIXES = ("/_simulator/", "/healthz")


class DelayLine:
    """A FIFO whose items come out no earlier than ``seconds`` after they went in."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._queue: asyncio.Queue[tuple[float, Message | None]] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()

    def put(self, item: Message | None) -> None:
        self._queue.put_nowait((self._loop.time() + self.seconds, item))

    async def get(self) -> Message | None:
        due, item = await self._queue.get()
        wait = due - self._loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        return item


class Latency:
    """ASGI middleware adding ``seconds`` to each REST round trip and to each socket message."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.seconds <= 0 or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
        elif scope["type"] == "http":
            if not str(scope.get("path", "")).startswith(UNDELAYED_PREFIXES):
                await asyncio.sleep(self.seconds)
            await self.app(scope, receive, send)
        else:
            await self._websocket(scope, receive, send)

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        inbound, outbound = DelayLine(self.seconds), DelayLine(self.seconds)

        async def pump_in() -> None:
            while True:
                message = await receive()
                inbound.put(message)
                if message["type"] == "websocket.disconnect":
                    return

        async def pump_out() -> None:
            while (message := await outbound.get()) is not None:
                try:
                    await send(message)
                except Exception:  # whatever the server raises once the peer is gone
                    return  # what is still on the line is lost, as on a network

        async def delayed_receive() -> Message:
            message = await inbound.get()
            assert message is not None
            return message

        async def delayed_send(message: Message) -> None:
            outbound.put(message)

        reader, writer = asyncio.create_task(pump_in()), asyncio.create_task(pump_out())
        try:
            await self.app(scope, delayed_receive, delayed_send)
        finally:
            outbound.put(None)  # the app is done: what it sent still arrives, late, then the line ends
            with contextlib.suppress(Exception):
                await writer
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
