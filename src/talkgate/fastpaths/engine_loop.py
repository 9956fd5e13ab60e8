"""Fast path ``engineio_loop``: a leaner read loop for python-engineio's websocket transport (the
relay's hot path).

python-engineio reads every websocket message through a new task and ``asyncio.wait_for`` (a
task, its context, a future, a timer handle and their callbacks), then looks its handler up with
``inspect``. At 500 relayed calls that is 5,000 messages a second, and those objects live until
the next message arrives: they made most of the collector's young generation, whose collections
then paused the event loop for 30-60 ms (``docs/operations.md``, "Garbage collection").

Here a socket that opens straight on websocket (as talkgate's clients do) is read by one plain
loop instead. What the library's loop gave stays:

- a silent peer is still found out: engine.io's ping timeout closes the socket (its service
  task), and a sweep (one timer for all sockets, every half ping timeout) then ends the writer,
  which closes the websocket, which ends the read loop; uvicorn's own websocket pings close a dead
  TCP peer the same way;
- a message over ``max_http_buffer_size`` ends the connection, as before (after the relay's fatal
  ``message_too_large``, told by ``GuardedWebSocket.wait`` on either loop);
- packets, the handshake, the writer's batching and ``close()`` are the library's own;
- a message that cannot be decoded or handled is dropped with one short log line, at most a few a
  minute per peer address (``talkgate.logs.PeerNoise``): a peer's garbage never writes tracebacks.

A socket upgraded from long-polling keeps the library's loop. The hook is the driver table
(``AsyncServer._async['websocket']``); should a python-engineio release change it, ``install``
leaves the library as it is (``talkgate.fastpaths`` says so in the log and the gauge), and the relay
works as before, only slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import engineio
from engineio import exceptions, packet
from engineio.async_drivers import asgi
from engineio.async_socket import AsyncSocket

from talkgate.logs import PeerNoise, short_exception

# How long a closing socket waits for its peer to read what was queued for it before it is dropped.
WRITER_GRACE_S = 5.0

log = logging.getLogger("talkgate.engine")  # (the name operators filter on: kept from web/engine.py)

# What a malformed message raises on its way through python-engineio's and python-socketio's decoding
# (int() of the packet type, json.loads, a too deep JSON, a bad binary placeholder): the peer's fault.
BAD_INPUT = (ValueError, TypeError, KeyError, IndexError, RecursionError, UnicodeError)

# Given a message's engine.io sid and text, the awaitable that handles it, or None: python-socketio's
# own decoding and dispatch then handle it.
Shortcut = Callable[[str, str], Awaitable[Any] | None]


def peer_of(environ: dict[str, Any] | None) -> str:
    """The client's address of an ASGI connection (python-engineio's own REMOTE_ADDR is a constant)."""
    scope = environ.get("asgi.scope") if environ else None
    client = scope.get("client") if isinstance(scope, dict) else None
    return str(client[0]) if client else "unknown"


def noise_of(server: engineio.AsyncServer) -> PeerNoise:
    noise: PeerNoise | None = getattr(server, "_talkgate_noise", None)
    if noise is None:
        noise = server._talkgate_noise = PeerNoise(10)
    return noise


class GuardedWebSocket(asgi.WebSocket):  # type: ignore[misc]
    """python-engineio's own websocket loop, where a frame it cannot decode closes that socket with
    one short log line: the library's loop decodes outside any try, so the error would escape to
    the ASGI server (a traceback per frame) and leave the Engine.IO socket open until its ping
    timeout. Not a shortcut: installed with fast paths off too (``guard``)."""

    async def wait(self) -> str | bytes:
        """A frame; one over ``max_http_buffer_size`` is first told to the server's
        ``_talkgate_oversized(sid, size)`` (the relay's fatal ``message_too_large``), which the
        caller's loop, either one, then ends the connection for."""
        data: str | bytes = await super().wait()
        socket = getattr(self.handler, "__self__", None)
        if isinstance(socket, AsyncSocket) and data and len(data) > socket.server.max_http_buffer_size:
            oversized = getattr(socket.server, "_talkgate_oversized", None)
            if oversized is not None and not socket.closed:
                try:
                    await oversized(socket.sid, len(data))
                except Exception:  # the connection still ends below: the refusal is a courtesy
                    log.exception("socket %s: telling an oversized message failed", socket.sid)
        return data

    async def __call__(self, environ: dict[str, Any]) -> str:
        socket = getattr(self.handler, "__self__", None)
        try:
            return await super().__call__(environ)  # type: ignore[no-any-return]
        except BAD_INPUT as exc:
            if isinstance(socket, AsyncSocket):
                noise_of(socket.server).line(
                    log,
                    peer_of(environ),
                    "socket %s: bad frame, closed (%s)",
                    socket.sid,
                    short_exception(exc),
                )
                await socket.close(wait=False, abort=True, reason=socket.server.reason.TRANSPORT_ERROR)
            return ""


class _WebSocket(GuardedWebSocket):
    async def __call__(self, environ: dict[str, Any]) -> str:
        socket = getattr(self.handler, "__self__", None)
        if not isinstance(socket, AsyncSocket) or socket.connected:
            return await super().__call__(environ)  # upgraded from long-polling: the library's loop
        self.asgi_receive = environ["asgi.receive"]
        self.asgi_send = environ["asgi.send"]
        await self.asgi_send({"type": "websocket.accept"})
        socket.connected = socket.upgraded = True
        sweep = _Sweep.of(socket.server)
        sweep.watch(socket)
        try:
            await serve(socket, self, getattr(socket.server, "_talkgate_shortcut", None), peer_of(environ))
        finally:
            sweep.sockets.discard(socket)
        return ""


class _Sweep:
    """Ends the websockets of sockets that engine.io has closed (ping timeout): engine.io's own
    loop noticed those by a timeout on every read, which is what this loop does without."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.sockets: set[AsyncSocket] = set()
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def of(cls, server: engineio.AsyncServer) -> _Sweep:
        sweep: _Sweep | None = getattr(server, "_talkgate_sweep", None)
        if sweep is None:
            sweep = cls(max(0.05, min(server.ping_timeout / 2, 5.0)))
            server._talkgate_sweep = sweep
        return sweep

    def watch(self, socket: AsyncSocket) -> None:
        self.sockets.add(socket)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while self.sockets:
            await asyncio.sleep(self.period_s)
            for socket in [s for s in self.sockets if s.closed]:
                self.sockets.discard(socket)
                socket.queue.put_nowait(None)  # the writer ends and closes the websocket


async def _write(socket: AsyncSocket, ws: _WebSocket) -> None:
    """Send what the socket queues, a batch at a time, until the socket ends or says CLOSE."""
    queue = socket.queue
    try:
        while True:
            pkt = await queue.get()
            queue.task_done()
            batch = [pkt]
            while pkt is not None and not queue.empty():
                pkt = queue.get_nowait()
                queue.task_done()
                batch.append(pkt)
            for p in batch:
                if p is None:
                    return
                await ws.send(p.encode())
                if p.packet_type == packet.CLOSE:
                    return  # the server ended this socket: nothing may follow
    except Exception:  # the peer is gone: the read loop ends with it
        return
    finally:
        # A peer that does not read never takes the close frame either: give up on it after a while
        # (the server's transport then goes when the peer does, or with uvicorn's ping timeout).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ws.close(), WRITER_GRACE_S)


async def serve(
    socket: AsyncSocket, ws: _WebSocket, shortcut: Shortcut | None = None, peer: str = "unknown"
) -> None:
    """The read loop of one websocket; ends when either side closes it."""
    server = socket.server
    on_message = server.handlers.get("message")
    limit = server.max_http_buffer_size
    noise = noise_of(server)
    writer = asyncio.ensure_future(_write(socket, ws))
    try:
        while True:
            try:
                data = await ws.wait()
            except OSError:  # the websocket closed (engine.io's driver raises this)
                break
            if data is None or len(data) > limit or socket.closed:
                break  # (closed: the server ended this socket; what the peer sent since is moot)
            try:
                handled = None
                if shortcut is not None and type(data) is str and data[:1] == "4":
                    handled = shortcut(socket.sid, data[1:])
                if handled is not None:
                    await handled
                    continue
                pkt = packet.Packet(encoded_packet=data)
                if pkt.packet_type == packet.MESSAGE and on_message is not None:
                    await on_message(socket.sid, pkt.data)
                else:
                    await socket.receive(pkt)
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                break
            except BAD_INPUT as exc:
                noise.line(log, peer, "socket %s: bad message dropped (%s)", socket.sid, short_exception(exc))
            except Exception:
                if noise.allow(peer):
                    log.exception("socket %s: a message's handler failed", socket.sid)
    finally:
        await socket.queue.put(None)  # the writer ends once it has sent what was queued
        done, _ = await asyncio.wait({writer}, timeout=WRITER_GRACE_S)
        if not done:  # a peer that does not read: what is queued for it never drains
            writer.cancel()  # its ``finally`` still closes the websocket
            with contextlib.suppress(asyncio.CancelledError):
                await writer
        await socket.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)


def library_fits(eio: engineio.AsyncServer) -> bool:
    """Whether ``eio`` has the driver table this loop replaces an entry of."""
    drivers = getattr(eio, "_async", None)
    return isinstance(drivers, dict) and drivers.get("websocket") is asgi.WebSocket


def guard(eio: engineio.AsyncServer, noise: PeerNoise | None = None) -> bool:
    """Keep python-engineio's loop, guarded against undecodable frames; False where the library
    differs (its loop is then kept unguarded)."""
    if noise is not None:
        eio._talkgate_noise = noise
    if not library_fits(eio):
        return False
    eio._async = {**eio._async, "websocket": GuardedWebSocket}
    return True


def install(
    eio: engineio.AsyncServer, shortcut: Shortcut | None = None, noise: PeerNoise | None = None
) -> bool:
    """Use this loop for ``eio``'s websocket connections; False where the library differs.

    ``shortcut`` may take text messages before python-socketio decodes them (the relay's audio);
    ``noise`` rate-limits the log lines about bad input (per peer address).
    """
    if noise is not None:
        eio._talkgate_noise = noise
    if not library_fits(eio):
        return False
    eio._async = {**eio._async, "websocket": _WebSocket}
    eio._talkgate_shortcut = shortcut
    return True
