"""Relay latency benchmark: N concurrent push-to-talk sessions through three relays to one sink.

    python bench/relay.py [--sessions 200] [--duration 15] [--only talkgate]
        [--workers 2 --database-url postgresql+asyncpg://... --redis-url redis://...]
    python bench/relay.py --pin [--pin-max 2000] [--pin-step 50] [--duration 15]

Each session sends 16 kHz PCM in 100 ms chunks (base64), in turns of 3 s with 1 s pauses, its
turns offset from the others' (spread over the 4 s cycle, as independent users are). The
first 8 bytes of every chunk carry its send time (CLOCK_MONOTONIC, shared by all processes on
Linux); the sink provider records arrival minus send. Every session first connects and starts
its conversation (connect + ``conversation_start`` time is reported as "start"); once all have
started, they talk, and only that traffic is measured, from when every session has begun its
first turn. Relays measured, each in its own process:

- bare: a ``websockets`` pass-through (client frames are already provider frames);
- minimal: python-socketio that only forwards ``send_audio`` as ``user_audio_chunk``;
- node: socket.io 4 + ws on Node, doing what the minimal relay does (``bench/node``; its pinned
  packages are installed by ``make bench``);
- talkgate: ``talkgate serve`` (validation, PTT state machine, dialect, recording), with
  ``--workers N`` as N processes on one port (CPU is summed over all of them).

``--pin``: capacity per core. The relay under test runs on one core (``os.sched_setaffinity``, which
its threads and children inherit) and the load generator and the sink on the others, so each relay
has one whole core and the machine can decide a tail. For each relay a bisection over session
counts (multiples of ``--pin-step`` up to ``--pin-max``) finds the largest count with a relay p99
below 20 ms, printing every step's figures and the relay's CPU per relayed chunk; the last line is
``capacity per core at p99 < 20 ms: talkgate <N>, python-socketio <M>, node socket.io <K>, bare
websockets <B> sessions``.

The load generator drives Socket.IO with raw Engine.IO frames, and it and the sink speak websockets'
sans-I/O protocol straight over asyncio transports, so that they are not the bottleneck; they run
on uvloop without the cyclic garbage collector, and their CPU is printed.
The floors run on uvloop with their start-up heap frozen, as ``talkgate serve`` does.
Sessions close only once every session's traffic is over, so that call ends are not measured.
Release → ``end_user_audio`` is measured from the send time of a turn's last chunk (sent right
before ``user-audio-end``) to the arrival of ``end_user_audio``.

On a small machine a single stall (another process scheduled, a full garbage collection) moves a
p99 by tens of milliseconds: ``--repeat K`` measures each relay K times, interleaved, and the
ratio line uses the median p99 of each.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import itertools
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

import numpy as np
import websockets
from websockets.client import ClientProtocol
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Protocol
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

import episodes  # bench/episodes.py, beside this script

CHUNK_BYTES = 3200  # 100 ms at 16 kHz PCM16
TURN_CHUNKS = 30  # a 3 s turn
TURN_GAP_S = 1.1  # from the last chunk of a turn to the first of the next
TURN_CYCLE_S = (TURN_CHUNKS - 1) * 0.1 + TURN_GAP_S
START_TIMEOUT_S = 60.0  # a session not started by then counts as a failed start
PIN_P99_MS = 20.0  # --pin: a session count is carried when the relay's p99 stays below this
NODE_RELAY = Path(__file__).resolve().parent / "node" / "relay.js"
KINDS = ("bare", "minimal", "node", "talkgate")
PIN_NAMES = {
    "talkgate": "talkgate",
    "minimal": "python-socketio",
    "node": "node socket.io",
    "bare": "bare websockets",
}
JWT_SECRET = "bench-secret-0123456789-abcdefghijklmnopqrstu"


def now_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def instrument_run(main: Any) -> None:
    """Run a measuring process (sink, load generator) so that it adds as little as it can to what
    it measures: on uvloop where installed, and without the cyclic garbage collector, whose full
    collections paused these processes for 40-90 ms and showed up as relay latency. They live for
    one run and make little cyclic garbage."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


# --- the measuring processes' websockets --------------------------------------------------------


class SansIO(asyncio.Protocol):
    """A websocket on websockets' sans-I/O protocol and a bare asyncio transport: the measuring
    processes' sockets. The library's asyncio connection costs a future, a lock and an async
    context manager per message, which at 1000 sessions made the load generator and the sink take
    0.8 of this machine's two cores away from the relay they measure."""

    def __init__(self, ws: Protocol) -> None:
        self.ws = ws
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Frame):
                if event.opcode is Opcode.TEXT:  # the measured peers send no fragmented messages
                    self.on_text(event.data)
            else:
                self.on_handshake(event)
        self.flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self.flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def flush(self) -> None:
        assert self.transport is not None
        for out in self.ws.data_to_send():
            if out:
                self.transport.write(out)
            elif self.transport.can_write_eof():
                self.transport.write_eof()
        if self.ws.close_expected() and not self.ws.data_to_send():
            self.transport.close()

    def send_text(self, data: bytes) -> None:
        self.ws.send_text(data)
        self.flush()

    async def close(self) -> None:
        if self.ws.state is websockets.protocol.State.OPEN:
            self.ws.send_close()
            self.flush()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                await self.lost
        if self.transport is not None:
            self.transport.close()

    def on_text(self, data: bytes) -> None:
        pass

    def on_handshake(self, event: Request | Response) -> None:
        pass


# --- the sink provider (own process) -------------------------------------------------------------


def run_sink(port: int) -> None:
    chunk_lat: list[float] = []
    chunk_at: list[float] = []  # arrival, s since the last reset: where in the run a tail was
    reset_at = [now_ns()]
    ids = itertools.count(1)
    run = os.urandom(4).hex()
    end_lat: list[float] = []

    def http(path: str) -> Response:
        if path.startswith("/v1/convai/conversation/get-signed-url"):
            body = json.dumps({"signed_url": f"ws://127.0.0.1:{port}/v1/convai/conversation?agent_id=a&s=x"})
        elif path.startswith("/stats"):
            stats = {"chunk": chunk_lat, "at": chunk_at, "end": end_lat, "reset": reset_at[0] / 1e9}
            body = json.dumps(stats)
        elif path.startswith("/reset"):
            chunk_lat.clear()
            chunk_at.clear()
            reset_at[0] = now_ns()
            end_lat.clear()
            body = "{}"
        else:
            return Response(HTTPStatus.NOT_FOUND, "Not Found", Headers([("Content-Length", "0")]), b"")
        data = body.encode()
        headers = Headers(
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                ("Connection", "close"),
            ]
        )
        return Response(HTTPStatus.OK, "OK", headers, data)

    class Conversation(SansIO):
        def __init__(self) -> None:
            super().__init__(ServerProtocol(max_size=None))
            self.last_send = 0

        def on_handshake(self, event: Request | Response) -> None:
            assert isinstance(self.ws, ServerProtocol) and isinstance(event, Request)
            if event.path.split("?")[0] != "/v1/convai/conversation":
                self.ws.send_response(http(event.path))
                return
            self.ws.send_response(self.ws.accept(event))
            metadata = {
                "type": "conversation_initiation_metadata",
                "conversation_initiation_metadata_event": {
                    # unique over repeats, and over runs sharing a PostgreSQL database
                    "conversation_id": f"conv_{run}_{next(ids)}",
                    "agent_output_audio_format": "pcm_16000",
                    "user_input_audio_format": "pcm_16000",
                },
            }
            self.ws.send_text(json.dumps(metadata).encode())

        def on_text(self, data: bytes) -> None:
            t = now_ns()
            if data.startswith(b'{"user_audio_chunk":"'):
                self.last_send = struct.unpack_from("<Q", base64.b64decode(data[21:33]))[0]
                chunk_lat.append((t - self.last_send) / 1e6)
                chunk_at.append(round((t - reset_at[0]) / 1e9, 3))
            elif b'"end_user_audio"' in data and self.last_send:
                end_lat.append((t - self.last_send) / 1e6)

    async def main() -> None:
        server = await asyncio.get_running_loop().create_server(Conversation, "127.0.0.1", port, backlog=4096)
        async with server:
            await asyncio.Future()

    instrument_run(main())


# --- the two floors (own processes) --------------------------------------------------------------
# Each floor process is set up like ``talkgate serve``: on uvloop, its start-up heap frozen
# (talkgate/fastpaths/gc_pacing.py), so that the ratio compares the relays' work, not their process set-up.


def settle_floor() -> None:
    gc.collect()
    gc.freeze()
    gc.callbacks.append(print_pauses)


_gc_began = [0]


def print_pauses(phase: str, info: dict[str, Any]) -> None:
    """A floor's collections of 1 ms or more, in its log (``gc_in_window`` reads them): generation,
    start (CLOCK_MONOTONIC s, as the sink's arrival times), milliseconds. talkgate times its own
    (``talkgate_gc_pause_seconds``)."""
    if phase == "start":
        _gc_began[0] = now_ns()
    elif (took := now_ns() - _gc_began[0]) >= 1_000_000:
        print(f"bench-gc {info['generation']} {_gc_began[0] / 1e9:.3f} {took / 1e6:.1f}", flush=True)


def gc_in_window(log: str, start: float, end: float) -> tuple[int, float, float]:
    """A floor's collections of 1 ms or more that began in [start, end]: how many, their total and
    longest pause (ms)."""
    pauses = [
        float(ms)
        for line in log.splitlines()
        if line.startswith("bench-gc ")
        for _, _, began, ms in [line.split()]
        if start <= float(began) <= end
    ]
    return len(pauses), sum(pauses), max(pauses, default=0.0)


def gc_metrics(text: str) -> dict[str, float]:
    """talkgate's ``talkgate_gc_pause_seconds`` count and sum, over all generations."""
    out = {"count": 0.0, "sum": 0.0}
    for line in text.splitlines():
        for key in out:
            if line.startswith(f"talkgate_gc_pause_seconds_{key}{{"):
                out[key] += float(line.rsplit(" ", 1)[1])
    return out


def run_bare(port: int, sink: int) -> None:
    async def handler(ws: Any) -> None:
        async with websockets.connect(
            f"ws://127.0.0.1:{sink}/v1/convai/conversation", compression=None
        ) as up:
            await up.send('{"type":"conversation_initiation_client_data"}')
            await up.recv()

            async def down() -> None:
                async for m in up:
                    await ws.send(m)

            task = asyncio.create_task(down())
            async for m in ws:
                await up.send(m)
            task.cancel()

    async def main() -> None:
        async with websockets.serve(handler, "127.0.0.1", port, compression=None):
            await asyncio.Future()

    import uvloop

    settle_floor()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def run_minimal(port: int, sink: int) -> None:
    import socketio
    import uvicorn

    sio = socketio.AsyncServer(async_mode="asgi", async_handlers=False)
    ups: dict[str, Any] = {}

    @sio.event
    async def connect(sid: str, environ: Any, auth: Any = None) -> None:
        pass

    @sio.on("conversation_start")
    async def start(sid: str, data: Any = None) -> dict[str, Any]:
        up = await websockets.connect(f"ws://127.0.0.1:{sink}/v1/convai/conversation", compression=None)
        await up.send('{"type":"conversation_initiation_client_data"}')
        await up.recv()
        ups[sid] = up
        return {"ok": True}

    @sio.on("send_audio")
    async def send_audio(sid: str, data: Any) -> None:
        await ups[sid].send('{"user_audio_chunk":"' + data["audio"] + '"}')

    @sio.on("user-audio-end")
    async def end(sid: str, data: Any = None) -> None:
        await ups[sid].send('{"type":"end_user_audio"}')

    @sio.event
    async def disconnect(sid: str, *_: Any) -> None:
        up = ups.pop(sid, None)
        if up:
            await up.close()

    settle_floor()
    uvicorn.run(  # on uvloop: uvicorn picks it where installed
        socketio.ASGIApp(sio), host="127.0.0.1", port=port, log_level="warning", ws="websockets-sansio"
    )


# --- the load generator ---------------------------------------------------------------------------


class Client(SansIO):
    """A client websocket of the load generator."""

    def __init__(self, url: str) -> None:
        self.uri = parse_uri(url)
        super().__init__(ClientProtocol(self.uri, max_size=None))
        self.opened = asyncio.get_running_loop().create_future()

    @classmethod
    async def connect(cls, url: str) -> Client:
        self = cls(url)
        await asyncio.get_running_loop().create_connection(lambda: self, self.uri.host, self.uri.port)
        assert isinstance(self.ws, ClientProtocol)
        self.ws.send_request(self.ws.connect())
        self.flush()
        await self.opened
        return self

    def on_handshake(self, event: Request | Response) -> None:
        if self.ws.handshake_exc is not None:
            self.opened.set_exception(self.ws.handshake_exc)
        else:
            self.opened.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the handshake"))


class EngineIO(Client):
    """Just enough of Engine.IO 4 / Socket.IO 5 over a raw websocket."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.acks: dict[int, asyncio.Future[Any]] = {}
        self.next_ack = 0
        self.connected = asyncio.get_running_loop().create_future()

    @classmethod
    async def open(cls, url: str, token: str | None) -> EngineIO:
        self = await cls.connect(f"{url}/socket.io/?EIO=4&transport=websocket")
        assert isinstance(self, EngineIO)
        self.send_text(b"40" + json.dumps({"token": token} if token else {}).encode())
        await self.connected
        return self

    def on_text(self, m: bytes) -> None:
        if m == b"2":
            self.send_text(b"3")
        elif m.startswith(b"43"):
            i = 2
            while m[i : i + 1].isdigit():
                i += 1
            fut = self.acks.pop(int(m[2:i]), None)
            if fut and not fut.done():
                fut.set_result(json.loads(m[i:]))
        elif m.startswith(b"40") and not self.connected.done():
            self.connected.set_result(None)
        elif m.startswith(b"44") and not self.connected.done():
            self.connected.set_exception(RuntimeError(f"refused: {m.decode()}"))

    def emit(self, event: str, data: Any = None) -> None:
        self.send_text(
            b"42" + json.dumps([event, data] if data is not None else [event], separators=(",", ":")).encode()
        )

    async def call(self, event: str, data: Any = None) -> Any:
        self.next_ack += 1
        fut = asyncio.get_running_loop().create_future()
        self.acks[self.next_ack] = fut
        self.send_text(f"42{self.next_ack}".encode() + json.dumps([event, data or {}]).encode())
        return await asyncio.wait_for(fut, 30)


class ChunkText:
    """A session's chunk message, built per send from its send time and a constant tail: the 9-byte
    head (send time, one pad byte) encodes to exactly 12 base64 characters, so only those change."""

    HEAD = 9

    def __init__(self, seed: int, prefix: bytes, suffix: bytes) -> None:
        rng = np.random.default_rng(seed)
        pcm = rng.integers(-3000, 3000, CHUNK_BYTES // 2, dtype="<i2").tobytes()
        self.prefix = prefix
        self.tail = base64.b64encode(pcm[self.HEAD :]) + suffix

    def now(self) -> bytes:
        return self.prefix + base64.b64encode(struct.pack("<QB", now_ns(), 0)) + self.tail


class Phase:
    """Every session connects and starts its conversation first (their start times are measured
    on their own); then, all started, they talk, and only that traffic's latency is measured."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.started: list[float] = []
        self.failures: list[str] = []
        self.all_started = asyncio.Event()
        self.go = asyncio.Event()
        self.talking = n
        self.all_done = asyncio.Event()

    def done_one(self) -> None:
        """A session's traffic is over. Sessions close only when all are over, so that the
        conversation ends (recording finalised, call log saved) are not measured as chunk latency
        of the sessions still talking."""
        self.talking -= 1
        if self.talking == 0:
            self.all_done.set()

    def started_one(self, seconds: float) -> None:
        self.started.append(seconds)
        self._check()

    def failed_one(self, why: str) -> None:
        self.failures.append(why)
        self.done_one()
        self._check()

    def _check(self) -> None:
        if len(self.started) + len(self.failures) == self.n:
            self.all_started.set()


async def session(
    kind: str,
    url: str,
    token: str | None,
    duration: float,
    start_delay: float,
    turn_offset: float,
    phase: Phase,
) -> None:
    await asyncio.sleep(start_delay)
    seed = int(start_delay * 1000)
    t0 = time.monotonic()
    sock: Client
    if kind == "bare":
        sock = await Client.connect(url)
        chunk = ChunkText(seed, b'{"user_audio_chunk":"', b'"}')

        def begin() -> None:
            sock.send_text(b'{"type":"user_message_begin"}')

        def end() -> None:
            sock.send_text(b'{"type":"end_user_audio"}')
    else:
        try:
            async with asyncio.timeout(START_TIMEOUT_S):
                eio = await EngineIO.open(url, token)
                (ack,) = await eio.call("conversation_start")
            if not ack.get("ok"):
                raise RuntimeError(ack.get("error"))
        except Exception as exc:  # counted and reported; the other sessions go on
            phase.failed_one(repr(exc)[:200])
            return
        sock = eio
        chunk = ChunkText(seed, b'42["send_audio",{"audio":"', b'"}]')

        def begin() -> None:
            eio.emit("user-audio-start")

        def end() -> None:
            eio.emit("user-audio-end")

    phase.started_one(time.monotonic() - t0)
    await phase.go.wait()
    loop = asyncio.get_running_loop()
    stop = loop.time() + TURN_CYCLE_S + duration  # the same for all: measured once all talk
    # Users press their buttons independently: the sessions' turns are spread over the whole turn
    # cycle, not bunched (which doubled the chunk rate in half of every cycle and idled the rest).
    await asyncio.sleep(turn_offset)
    next_tick = loop.time()
    while loop.time() < stop:
        begin()
        for i in range(TURN_CHUNKS):  # the release follows the last chunk at once
            if i:
                next_tick += 0.1
                await asyncio.sleep(max(0.0, next_tick - loop.time()))
                if loop.time() >= stop:
                    break  # all sessions stop together; the open turn is left unreleased
            sock.send_text(chunk.now())
        else:
            end()
            next_tick += TURN_GAP_S  # 1 s between turns
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
    phase.done_one()
    await phase.all_done.wait()
    await sock.close()


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``serve --workers`` runs its workers as children)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = (task / "children").read_text().split()
        for child in children:
            pids += process_tree(int(child))
    return pids


def cpu_seconds(pid: int) -> float:
    """CPU time of the process and its live descendants."""
    total = 0
    for p in process_tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def thread_stats(pid: int) -> dict[str, tuple[int, int, int]]:
    """Voluntary and involuntary context switches and nanoseconds spent runnable but waiting for a
    CPU (``schedstat``) of the process and its live descendants: their main threads ("main") and
    all their other threads ("others": the disk thread, the pools)."""
    out: dict[str, tuple[int, int, int]] = {}
    for p in process_tree(pid):
        try:
            tasks = list(Path(f"/proc/{p}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                status = (task / "status").read_text().splitlines()
                waited = int((task / "schedstat").read_text().split()[1])
            except FileNotFoundError:
                continue
            fields = dict(line.split(":\t", 1) for line in status if ":\t" in line)
            name = "main" if task.name == str(p) else "others"
            vol, invol, wait = out.get(name, (0, 0, 0))
            out[name] = (
                vol + int(fields["voluntary_ctxt_switches"]),
                invol + int(fields["nonvoluntary_ctxt_switches"]),
                wait + waited,
            )
    return out


def run_sampler(pid: int, out: Path) -> None:
    """``--keep``: every 5 ms, the CPU time and the time waiting for a CPU (``schedstat``, ns) of
    the relay's main thread and of its other threads together, with the time (CLOCK_MONOTONIC ns),
    until SIGTERM: whether a stall was the relay working, or waiting for its core, or neither
    (``bench/episodes.py`` reads them)."""
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    rows = []
    with contextlib.suppress(FileNotFoundError):
        while not stop:
            main = other_run = other_wait = 0
            for task in Path(f"/proc/{pid}/task").iterdir():
                with contextlib.suppress(FileNotFoundError):
                    run, wait = map(int, (task / "schedstat").read_text().split()[:2])
                    if task.name == str(pid):
                        main = run, wait
                    else:
                        other_run, other_wait = other_run + run, other_wait + wait
            rows.append(f"{now_ns()} {main[0]} {main[1]} {other_run} {other_wait}")
            time.sleep(0.005)
    out.write_text("\n".join(rows) + "\n")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


async def get_text(port: int, path: str) -> str:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await r.readuntil(b"\r\n\r\n")
    length = int(
        next(h for h in data.decode().split("\r\n") if h.lower().startswith("content-length")).split(":")[1]
    )
    body = await r.readexactly(length)
    w.close()
    return body.decode()


async def get_json(port: int, path: str) -> Any:
    return json.loads(await get_text(port, path))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass(frozen=True)
class Deployment:
    """How talkgate runs in the benchmark: one process by default."""

    workers: int = 1
    database_url: str | None = None
    redis_url: str | None = None

    def env(self) -> dict[str, str]:
        env = {"TALKGATE_DATABASE_URL": self.database_url, "TALKGATE_REDIS_URL": self.redis_url}
        return {k: v for k, v in env.items() if v}

    def describe(self) -> str:
        db = "PostgreSQL" if self.database_url and "postgres" in self.database_url else "SQLite"
        return f"talkgate: {self.workers} worker(s), {db}" + (", Redis" if self.redis_url else "")


def pinned(cpus: set[int] | None) -> Any:
    """A ``preexec_fn`` that runs the child on ``cpus`` (None: wherever the scheduler likes)."""
    if cpus is None:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


async def measure(
    kind: str,
    n: int,
    duration: float,
    sink: int,
    sink_pid: int,
    tmp: Path,
    deployment: Deployment,
    cpus: set[int] | None = None,
    sample: bool = False,
) -> dict[str, Any]:
    port = free_port()
    env = {**os.environ}
    if kind == "talkgate":
        env.update(
            {
                "ELEVENLABS_API_KEY": "bench-key",
                "ELEVENLABS_BASE_URL": f"http://127.0.0.1:{sink}",
                "ELEVENLABS_AGENT_ID": "a",
                "TALKGATE_DATA_DIR": str(tmp / "data"),
                "TALKGATE_JWT_SECRET": JWT_SECRET,
                "TALKGATE_LOG_LEVEL": "WARNING",
                "TALKGATE_INACTIVITY_TIMEOUT": "0",
                # The series measures the signal dialect (release → end_user_audio), whatever the
                # key's default dialect is.
                "TALKGATE_PTT_TURN_END": "signal",
                "TALKGATE_KEEPALIVE": "text",
                # One bench user holds every session (the per-user limits are per process).
                "TALKGATE_MAX_SOCKETS_PER_USER": str(n),
                "TALKGATE_MAX_CONVERSATIONS_PER_USER": str(n),
                # Bench users start calls far faster than a person: no hourly rate.
                "TALKGATE_MAX_CALLS_PER_USER_PER_HOUR": "0",
                **deployment.env(),
            }
        )
        cmd = [sys.executable, "-m", "talkgate.cli", "serve", "--port", str(port)]
        cmd += ["--workers", str(deployment.workers)]
    elif kind == "node":
        if not (NODE_RELAY.parent / "node_modules").is_dir():
            raise SystemExit("the Node relay's packages are missing: make bench (or npm ci in bench/node)")
        cmd = ["node", str(NODE_RELAY), str(port), str(sink)]
    else:
        cmd = [sys.executable, __file__, "--serve", kind, "--port", str(port), "--sink", str(sink)]
    # Each run's files under a stem of its own: a bisection's or --repeat's runs are all kept.
    stem, k = f"{kind}-{n}", 1
    while (tmp / f"{stem}.log").exists():
        k += 1
        stem = f"{kind}-{n}-{k}"
    log_path = tmp / f"{stem}.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=pinned(cpus)
        )
    try:
        await wait_port(port)
        token = None
        if kind == "talkgate":
            from talkgate.auth import TokenVerifier
            from talkgate.settings import Settings

            token = TokenVerifier(Settings(_env_file=None, jwt_secret=JWT_SECRET)).issue("bench")  # type: ignore[call-arg]
        url = f"ws://127.0.0.1:{port}" if kind != "bare" else f"ws://127.0.0.1:{port}/"
        phase = Phase(n)
        spread = 0.1 if kind == "bare" else 1.0  # conversation starts over the first second
        offsets = [(i * spread / n, i * TURN_CYCLE_S / n) for i in range(n)]
        sessions = asyncio.gather(*(session(kind, url, token, duration, *o, phase) for o in offsets))
        await phase.all_started.wait()
        phase.go.set()
        sampler = (
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--serve",
                    "sampler",
                    "--port",
                    str(proc.pid),
                    "--out",
                    str(tmp / f"{stem}-schedstat.txt"),
                ]
            )
            if sample
            else None
        )
        await asyncio.sleep(TURN_CYCLE_S)  # every session has begun its first turn: steady load
        gc0 = gc_metrics(await get_text(port, "/metrics")) if kind == "talkgate" else None
        await get_json(sink, "/reset")
        cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
        threads0 = thread_stats(proc.pid)
        sink0, load0 = cpu_seconds(sink_pid), time.process_time()
        await phase.all_done.wait()  # the traffic is over; the sessions close after this
        elapsed = time.monotonic() - t0
        cpu = (cpu_seconds(proc.pid) - cpu0) / elapsed
        if sampler is not None:
            sampler.terminate()
            sampler.wait(10)
        if gc0 is not None:  # collections in the window: how many, their total pause (ms), no longest
            gc1 = gc_metrics(await get_text(port, "/metrics"))
            gc_window = (int(gc1["count"] - gc0["count"]), (gc1["sum"] - gc0["sum"]) * 1000, float("nan"))
        # Over the window: threads born in it count from zero, threads ended in it not at all.
        threads = {
            name: tuple(x - x0 for x, x0 in zip(now, threads0.get(name, (0, 0, 0)), strict=True))
            for name, now in thread_stats(proc.pid).items()
        }
        sink_cpu = (cpu_seconds(sink_pid) - sink0) / elapsed
        load_cpu = (time.process_time() - load0) / elapsed
        await sessions
        stats = await get_json(sink, "/stats")
        (tmp / f"{stem}-latency.json").write_text(json.dumps(stats))
    except BaseException:
        print(
            f"--- {kind} relay's log (last lines) ---\n" + "\n".join(log_path.read_text().splitlines()[-30:])
        )
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    chunks = max(1, len(stats["chunk"]))
    if kind in ("bare", "minimal"):
        gc_window = gc_in_window(log_path.read_text(), t0, t0 + elapsed)
    elif kind == "node":
        gc_window = (0, float("nan"), float("nan"))  # not measured
    return {
        "kind": kind,
        "chunks": len(stats["chunk"]),
        "p50": pct(stats["chunk"], 50),
        "p99": pct(stats["chunk"], 99),
        "end_p99": pct(stats["end"], 99),
        "cpu": cpu,
        "load_cpu": load_cpu,
        "sink_cpu": sink_cpu,
        "cpu_per_chunk_ms": cpu * elapsed * 1000 / chunks,
        # The relay's context switches per relayed chunk, voluntary + involuntary, all threads.
        "switches_per_chunk": sum(v + i for v, i, _ in threads.values()) / chunks,
        "switches": {name: (v / chunks, i / chunks) for name, (v, i, _) in threads.items() if v + i},
        # The share of the window its main thread(s) were ready to run but waited for a CPU: the
        # machine's other work, which a tail then is (above a few per cent, read the run as noise).
        "run_wait": threads.get("main", (0, 0, 0))[2] / 1e9 / elapsed,
        # Garbage collections in the window (1 ms or more for the floors): count, total and
        # longest pause in ms (talkgate's longest is not known; Node's are not measured).
        "gc": gc_window,
        "episodes": episodes.report(tmp / f"{stem}-latency.json", PIN_P99_MS, verbose=False)
        if sample
        else "",
        "start_p50": pct(phase.started, 50) * 1000,
        "start_p99": pct(phase.started, 99) * 1000,
        "failed": len(phase.failures),
        "why": phase.failures[-1] if phase.failures else "",
    }


async def bench(
    n: int,
    duration: float,
    kinds: tuple[str, ...] = ("bare", "minimal", "talkgate"),
    deployment: Deployment = Deployment(),
    repeat: int = 1,
    logs: Path | None = None,
) -> None:
    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, __file__, "--serve", "sink", "--port", str(sink_port)])
    rows: list[dict[str, Any]] = []
    try:
        await wait_port(sink_port)
        kept = contextlib.nullcontext(tempfile.mkdtemp(dir=_made(logs))) if logs else None
        with kept or tempfile.TemporaryDirectory() as tmp:
            for _ in range(repeat):
                for k in kinds:
                    rows.append(
                        await measure(
                            k, n, duration, sink_port, sink.pid, Path(tmp), deployment, sample=bool(logs)
                        )
                    )
    finally:
        sink.terminate()
        sink.wait(10)
    print(f"\n{n} sessions, {duration:g} s, 100 ms chunks; latency = app send → provider arrival (ms)")
    print("(measured once every session has started; 'start' = connect + conversation_start, ms)")
    print(f"({deployment.describe()}; CPU counts every process of a relay)")
    print("(load, sink: the load generator's and the sink's CPU in the same window, in cores)")
    print("(cs/chunk: the relay's context switches per relayed chunk, all its threads; waited: the")
    print(" share of the window its main thread was ready to run but waited for a CPU: the machine's)")
    print(
        f"{'relay':<10}{'chunks':>9}{'p50':>9}{'p99':>9}{'release→end p99':>17}{'CPU (cores)':>13}"
        f"{'start p50':>11}{'start p99':>11}{'failed':>8}{'load':>7}{'sink':>7}{'cs/chunk':>10}{'waited':>8}"
    )
    for r in rows:
        print(
            f"{r['kind']:<10}{r['chunks']:>9}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['end_p99']:>17.2f}"
            f"{r['cpu']:>13.2f}{r['start_p50']:>11.1f}{r['start_p99']:>11.1f}{r['failed']:>8}"
            f"{r['load_cpu']:>7.2f}{r['sink_cpu']:>7.2f}{r['switches_per_chunk']:>10.2f}{r['run_wait']:>8.0%}"
        )
        if r["failed"]:
            print(f"  {r['kind']}: {r['failed']} sessions did not start; the last: {r['why']}")
    p99 = {k: float(np.median([r["p99"] for r in rows if r["kind"] == k])) for k in kinds}
    if "talkgate" in p99 and "minimal" in p99:
        if repeat > 1:
            print(f"median p99 over {repeat} runs: " + ", ".join(f"{k} {v:.2f}" for k, v in p99.items()))
        ratio = p99["talkgate"] / p99["minimal"]
        print(f"relay p99 ratio (talkgate/minimal socket.io) at {n} sessions: {ratio:.2f}")


def gc_summary(gc_window: tuple[int, float, float]) -> str:
    count, total, longest = gc_window
    if total != total:  # NaN: not measured (Node)
        return "not measured"
    return f"{count} ({total:.0f} ms in all" + (
        f", the longest {longest:.0f} ms)" if longest == longest else ")"
    )


def switches_by_thread(r: dict[str, Any]) -> str:
    return ", ".join(f"{name} {v:.2f}/{i:.2f}" for name, (v, i) in sorted(r["switches"].items()))


def split_cores() -> tuple[set[int], set[int]]:
    """The relay's core (the last one this process may use) and the measuring processes' cores."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("--pin needs two cores: one for the relay, one for the load generator and sink")
    return {cores[-1]}, set(cores[:-1])


async def capacity(kind: str, top: int, step: int, probe: Any) -> tuple[int, dict[str, Any] | None]:
    """The largest multiple of ``step`` up to ``top`` at which ``probe`` gives p99 < 20 ms, by
    bisection (a count that fails bounds the search from above; one that passes, from below), and
    the figures of that count's run. Every step's figures are printed as they come."""
    lo, hi = 0, top // step + 1  # in steps: lo passes (0 trivially), hi fails (assumed past the top)
    best: dict[str, Any] | None = None
    while hi - lo > 1:
        mid = (lo + hi) // 2
        r = await probe(kind, mid * step)
        ok = r["p99"] < PIN_P99_MS and not r["failed"]
        print(
            f"  {PIN_NAMES[kind]:<16}{mid * step:>6} sessions: p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, "
            f"CPU {r['cpu']:.2f} core, {r['cpu_per_chunk_ms'] * 1000:.0f} µs per chunk, failed starts "
            f"{r['failed']}, {r['switches_per_chunk']:.2f} context switches per chunk, waited for a CPU "
            f"{r['run_wait'] * 100:.0f} % of the time, load+sink "
            f"{r['load_cpu'] + r['sink_cpu']:.2f} core: " + ("carried" if ok else "not carried"),
            flush=True,
        )
        print(
            "    context switches per chunk, voluntary/involuntary: "
            + switches_by_thread(r)
            + "; garbage collections in the window: "
            + gc_summary(r["gc"]),
            flush=True,
        )
        if r["episodes"]:  # --keep: bench/episodes.py DIR tells them one by one
            print("    " + r["episodes"], flush=True)
        if ok:
            lo, best = mid, r
        else:
            hi = mid
    return lo * step, best


async def pin_bench(
    kinds: tuple[str, ...], top: int, step: int, duration: float, deployment: Deployment, logs: Path | None
) -> None:
    relay, load_cpus = split_cores()
    os.sched_setaffinity(0, load_cpus)  # the load generator; the sink inherits it
    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, __file__, "--serve", "sink", "--port", str(sink_port)])
    print(
        f"relay on core {sorted(relay)}, load generator and sink on {sorted(load_cpus)}; "
        f"{duration:g} s of traffic per step, session counts in steps of {step} up to {top}",
        flush=True,
    )
    found: dict[str, int] = {}
    try:
        await wait_port(sink_port)
        kept = contextlib.nullcontext(tempfile.mkdtemp(dir=_made(logs))) if logs else None
        with kept or tempfile.TemporaryDirectory() as tmp:

            async def probe(kind: str, n: int) -> dict[str, Any]:
                return await measure(
                    kind, n, duration, sink_port, sink.pid, Path(tmp), deployment, relay, sample=bool(logs)
                )

            for kind in kinds:
                n, r = await capacity(kind, top, step, probe)
                found[kind] = n
                per_chunk = f"{r['cpu_per_chunk_ms'] * 1000:.0f} µs CPU per chunk at {n}" if r else "none"
                top_note = " (the top tried)" if n >= top else ""
                print(f"{PIN_NAMES[kind]}: {n} sessions per core{top_note}; {per_chunk}", flush=True)
    finally:
        sink.terminate()
        sink.wait(10)
    print(
        "capacity per core at p99 < 20 ms: "
        + ", ".join(f"{PIN_NAMES[k]} {found[k]}" for k in PIN_NAMES if k in found)
        + " sessions"
    )


def _made(folder: Path) -> Path:
    """``--keep``'s folder, made if missing (a missing one ended the run with a traceback)."""
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=200)
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--only", choices=list(KINDS), action="append", help="measure these relays only")
    p.add_argument("--pin", action="store_true", help="capacity per core: each relay on a core of its own")
    p.add_argument("--pin-max", type=int, default=2000, help="--pin: the largest session count tried")
    p.add_argument("--pin-step", type=int, default=50, help="--pin: session counts are multiples of this")
    p.add_argument("--workers", type=int, default=1, help="talkgate serve --workers N")
    p.add_argument("--repeat", type=int, default=1, help="measure each relay this many times")
    p.add_argument("--database-url", help="talkgate's TALKGATE_DATABASE_URL (default: SQLite)")
    p.add_argument("--redis-url", help="talkgate's TALKGATE_REDIS_URL")
    p.add_argument("--keep", type=Path, help="keep each relay's log and talkgate's data under this folder")
    p.add_argument("--serve", choices=["sink", "bare", "minimal", "sampler"], help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve == "sink":
        run_sink(args.port)
    elif args.serve == "bare":
        run_bare(args.port, args.sink)
    elif args.serve == "minimal":
        run_minimal(args.port, args.sink)
    elif args.serve == "sampler":
        run_sampler(args.port, args.out)
    elif args.pin:
        kinds = tuple(args.only or ("talkgate", "minimal", "node", "bare"))
        deployment = Deployment(args.workers, args.database_url, args.redis_url)
        instrument_run(pin_bench(kinds, args.pin_max, args.pin_step, args.duration, deployment, args.keep))
    else:
        kinds = tuple(args.only or ("bare", "minimal", "talkgate"))
        deployment = Deployment(args.workers, args.database_url, args.redis_url)
        instrument_run(bench(args.sessions, args.duration, kinds, deployment, args.repeat, args.keep))


if __name__ == "__main__":
    main()
