"""Several machines on one: two talkgate nodes behind HAProxy, on PostgreSQL, Redis and a bucket,
with nodes and services failing while people talk.

    python bench/cluster.py [--sessions 20] [--faults all|kill]
        [--postgres-url postgresql+asyncpg://...] [--redis-url redis://...]

It starts, on this machine: the provider simulator; PostgreSQL (a cluster of its own made with
Debian's ``pg_createcluster`` on a free port, so that it may be restarted; ``--postgres-url`` uses
an existing database instead, and then PostgreSQL is not restarted); Redis (``redis-server`` on a
free port, or ``--redis-url``, not restarted then); an S3 endpoint (moto_server) reached through a
TCP switch the run can cut; two ``talkgate serve`` nodes, each with its own port, data and spool
directories, as two machines would have; and HAProxy (Debian's package) in front, with the
configuration ``haproxy_config`` writes (the one docs/deployment.md shows): cookie-based stickiness,
so that Socket.IO long-polling works as well as WebSocket. It tears it all down at the end.

Load, through the proxy only: ``--sessions`` apps, half on long-polling and half on WebSocket, each
a user of its own, doing push-to-talk turns (2 s of 16 kHz PCM in 100 ms chunks, the simulator's
agent echoing each turn back) with recording on, conversation after conversation.

Faults, each while calls are live (``--faults kill`` runs the first alone):
1. node1 killed with SIGKILL: its apps reconnect through the proxy to node2 and start new
   conversations; node1 restarted repairs its spool; every call it held must end ``recovered`` with
   its audio up to at most 1 s before the kill in the bucket.
2. Redis restarted: ``recording_ready`` from one node to a user's socket on the other resumes.
3. PostgreSQL restarted (``pg_ctlcluster``): starts and ends meanwhile are retried or refused with
   ``database_unavailable``; none is lost or left ``active``.
4. The bucket unreachable (the switch cut) while calls end: their recordings stay in the spool
   and are stored once it is back.
5. node2 stopped with SIGTERM: its calls end ``server_shutdown`` with their recordings stored.

The last line: ``cluster: <S> sessions on 2 nodes; node killed: <R> of <K> calls recovered, <L>
lost, audio lost p99 <X> ms; service restarts: <E> app-visible errors, <D> calls lost``. Goals:
L = 0, D = 0, X <= 1000. Exit status 1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import io
import logging
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HAPROXY_CONFIG = """\
global
    log stdout format raw local0   # one line per request (or let syslog have it)
    maxconn 4000                # each takes two descriptors (app and node side)

defaults
    mode http
    log global
    option httplog
    option forwardfor
    timeout connect 5s
    timeout client 60s          # > Socket.IO's ping interval (25 s): a long-poll request waits that long
    timeout server 60s
    timeout tunnel 1h           # a WebSocket (a conversation, a media stream) lasts the whole call
    timeout http-keep-alive 60s
    retries 2
    option redispatch           # the node a cookie names does not answer: another one takes the request

frontend talkgate
    bind {bind}
    http-request deny if {{ path /metrics }}   # scrape each node directly
    default_backend talkgate

backend talkgate
    balance roundrobin
    # Sticky by cookie: every request of a Socket.IO session (each long-poll is a request of its
    # own) reaches the node that holds it. A node that is down is skipped (the app reconnects).
    cookie TALKGATE_NODE insert indirect nocache httponly
    option httpchk GET /healthz
    http-check expect status 200
    # A node that refuses connections is out within 2 s; one that is only slow (a busy machine)
    # gets 5 s per check before it counts as down, or every app on it would be cut off.
    timeout check 5s
    default-server check inter 1s fall 2 rise 2
{servers}"""


def haproxy_config(bind: str, nodes: list[tuple[str, str]]) -> str:
    """The tested HAProxy configuration for talkgate nodes ``(name, host:port)`` behind ``bind``."""
    servers = "".join(f"    server {name} {address} cookie {name}\n" for name, address in nodes)
    return HAPROXY_CONFIG.format(bind=bind, servers=servers)


SIM_KEY = "cluster-sim-key"
AGENT_ID = "agent_cluster"
JWT_SECRET = "cluster-bench-jwt-secret-0123456789abcdefghij"
SIGNING_SECRET = "cluster-bench-signing-secret-0123456789abcdef"
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "cluster-access-key",
    "AWS_SECRET_ACCESS_KEY": "cluster-secret-key-0123456789",
    "AWS_DEFAULT_REGION": "us-east-1",
}
CHUNK = 3200  # 100 ms of 16 kHz PCM16
TURN_CHUNKS = 20
COOKIE = "TALKGATE_NODE"
WAIT_S = 60.0
NODE_START_S = 300.0  # a node's start-up (imports, migration check, spool repair) on a busy machine


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(
    check: Callable[[], Awaitable[bool]] | Callable[[], bool], what: str, timeout: float = WAIT_S
) -> None:
    """Wait for a condition (polled), or fail naming it."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def answers(url: str) -> bool:
    import httpx

    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(url)).status_code < 500
    except httpx.HTTPError:
        return False


# --- the processes -------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def stop(self, timeout: float = 60) -> int | None:
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class Switch:
    """A TCP forwarder in front of the S3 endpoint that the run can cut: while cut, connections
    are refused and open ones dropped (the bucket unreachable), and nothing stored is lost."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.server: asyncio.Server | None = None
        self.open: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.open):
            writer.transport.abort()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.open.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort() if dst.transport.is_closing() else dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.open.difference_update((writer, up_writer))


def pg_version() -> str:
    return max(os.listdir("/usr/lib/postgresql"), key=int)


class OwnPostgres:
    """A PostgreSQL cluster of the run's own (Debian's pg_createcluster), restartable."""

    def __init__(self) -> None:
        self.version = pg_version()
        self.name = f"talkgate_cluster_{os.getpid()}"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/talkgate"

    def _run(self, *argv: str) -> None:
        subprocess.run(argv, check=True, capture_output=True)

    def start(self) -> None:
        self._run(
            "pg_createcluster", self.version, self.name, "--port", str(self.port),
            "--", "--auth-local=trust", "--auth-host=trust",
        )  # fmt: skip
        self._run("pg_ctlcluster", self.version, self.name, "start")
        self._run(
            "psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-c",
            "CREATE DATABASE talkgate",
        )

    def restart(self) -> None:
        self._run("pg_ctlcluster", self.version, self.name, "restart", "-m", "fast")

    def stop(self) -> None:
        subprocess.run(
            ["pg_dropcluster", self.version, self.name, "--stop"], capture_output=True, check=False
        )


@dataclass
class Cluster:
    tmp: Path
    python: str = sys.executable
    procs: list[Proc] = field(default_factory=list)
    nodes: dict[str, Proc] = field(default_factory=dict)
    node_ports: dict[str, int] = field(default_factory=dict)
    proxy_port: int = 0
    redis: Proc | None = None
    redis_port: int = 0
    postgres: OwnPostgres | None = None
    switch: Switch | None = None
    database_url: str = ""
    redis_url: str = ""
    bucket: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def proc(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        p = Proc(name, argv, self.tmp / f"{name}.log", env)
        self.procs.append(p)
        p.start()
        return p

    async def start(self, postgres_url: str | None, redis_url: str | None) -> None:
        if postgres_url:
            self.database_url = postgres_url
        else:
            self.postgres = OwnPostgres()
            self.postgres.start()
            self.database_url = self.postgres.url
        if redis_url:
            self.redis_url = redis_url
        else:
            self.redis_port = free_port()
            self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
            self.start_redis()
        await self._start_bucket()
        sim_port = free_port()
        talkgate = [self.python, "-m", "talkgate.cli"]
        self.proc("simulator", [*talkgate, "simulator", "--port", str(sim_port), "--api-key", SIM_KEY,
                                "--log-level", "WARNING"])  # fmt: skip
        self.proxy_port = free_port()
        self.node_ports = {"node1": free_port(), "node2": free_port()}
        env = self._node_env(f"http://127.0.0.1:{sim_port}")
        for name, port in self.node_ports.items():
            node_env = {**env, "TALKGATE_DATA_DIR": str(self.tmp / name), "TALKGATE_PORT": str(port)}
            self.nodes[name] = Proc(name, [*talkgate, "serve"], self.tmp / f"{name}.log", node_env)
        await until(lambda: answers(f"http://127.0.0.1:{sim_port}/healthz"), "the simulator")
        for name in self.nodes:  # one after the other: the first migrates the database
            await self.start_node(name)
        config = self.tmp / "haproxy.cfg"
        nodes = [(n, f"127.0.0.1:{p}") for n, p in self.node_ports.items()]
        config.write_text(haproxy_config(f"127.0.0.1:{self.proxy_port}", nodes))
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        proxy = self.proc("haproxy", [haproxy, "-f", str(config), "-db"])

        def proxy_up() -> Awaitable[bool]:
            assert proxy.proc is not None
            if proxy.proc.poll() is not None:
                raise RuntimeError(f"HAProxy exited: {proxy.log.read_text()[-2000:]}")
            return answers(f"{self.url}/healthz")

        await until(proxy_up, "HAProxy")

    def _node_env(self, sim_url: str) -> dict[str, str]:
        assert self.switch is not None
        return {
            **os.environ,
            **S3_ENV,
            "ELEVENLABS_API_KEY": SIM_KEY,
            "ELEVENLABS_BASE_URL": sim_url,
            "ELEVENLABS_AGENT_ID": AGENT_ID,
            "TALKGATE_PUBLIC_URL": self.url,
            "TALKGATE_JWT_SECRET": JWT_SECRET,
            "TALKGATE_SIGNING_SECRET": SIGNING_SECRET,
            "TALKGATE_DATABASE_URL": self.database_url,
            "TALKGATE_REDIS_URL": self.redis_url,
            "TALKGATE_REDIS_CHANNEL": f"talkgate-cluster-{secrets.token_hex(4)}",
            "TALKGATE_STORAGE_URL": f"s3://{self.bucket}/cluster",
            "TALKGATE_S3_ENDPOINT_URL": f"http://127.0.0.1:{self.switch.port}",
            "TALKGATE_MEDIA_STREAMING": "false",
            "TALKGATE_LOG_LEVEL": "INFO",
            # Bench users start calls far faster than a person: no hourly rate.
            "TALKGATE_MAX_CALLS_PER_USER_PER_HOUR": "0",
        }

    async def _start_bucket(self) -> None:
        import boto3

        moto_port = free_port()
        beside = Path(self.python).parent / "moto_server"
        exe = str(beside) if beside.exists() else shutil.which("moto_server") or "moto_server"
        self.proc("moto", [exe, "-H", "127.0.0.1", "-p", str(moto_port)])
        await until(lambda: answers(f"http://127.0.0.1:{moto_port}/moto-api/"), "moto_server")
        self.bucket = f"talkgate-cluster-{secrets.token_hex(4)}"
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{moto_port}",
            region_name="us-east-1",
            aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"],
        )
        s3.create_bucket(Bucket=self.bucket)
        self.switch = Switch(moto_port)
        await self.switch.start()

    def start_redis(self) -> None:
        argv = [
            "redis-server",
            "--port",
            str(self.redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.redis = self.proc("redis", argv)

    async def start_node(self, name: str) -> None:
        node = self.nodes[name]
        node.start()
        port = self.node_ports[name]

        def up() -> Awaitable[bool]:
            assert node.proc is not None
            if node.proc.poll() is not None:
                raise RuntimeError(f"{name} exited: see {node.log}")
            return answers(f"http://127.0.0.1:{port}/healthz")

        await until(up, name, NODE_START_S)

    async def stop(self) -> None:
        for node in self.nodes.values():
            node.stop()
        for p in reversed(self.procs):
            p.stop(10)
        if self.switch is not None and self.switch.server is not None:
            self.switch.server.close()
        if self.postgres is not None:
            self.postgres.stop()


# --- the apps ------------------------------------------------------------------------------------


@dataclass
class Call:
    app: str
    conversation_id: str
    node: str
    # monotonic, when conversation_start was acknowledged: talkgate starts the recording right
    # before it answers, so the recording's timeline begins this much (one reply's way) earlier
    started: float
    ended: bool = False  # the app's conversation_end was acknowledged
    ended_at: float = 0.0
    end_reason: str | None = None  # from conversation_ended
    audio_ms: int = 0  # caller audio sent
    heard: int = 0  # bytes of agent audio received: talkgate had the caller's audio, so it recorded


@dataclass
class Errors:
    """App-visible errors, by the phase of the run they happened in."""

    phase: str = "warm-up"
    seen: list[tuple[str, str]] = field(default_factory=list)

    def add(self, what: str) -> None:
        self.seen.append((self.phase, what[:200]))


APP_LOG = logging.getLogger("cluster.apps")


def allow_long_polls() -> None:
    """python-engineio's client refuses a long-poll response of more than 16 packets ("Unexpected
    packet from server, aborting") and drops the connection; an agent's reply arriving faster than
    real time fills one easily. Browsers' engine.io-client has no such cap: neither do these apps."""
    from engineio import payload

    payload.Payload.max_decode_packets = 100_000


class App:
    """One app: a user of its own, on long-polling or WebSocket, talking through the proxy; it
    reconnects and starts a new conversation whenever its connection drops."""

    def __init__(self, index: int, url: str, transport: str, token: str, errors: Errors) -> None:
        self.name = f"app{index}"
        self.url = url
        self.transport = transport
        self.token = token
        self.errors = errors
        self.calls: list[Call] = []
        self.current: Call | None = None
        self.ready: set[str] = set()  # conversations whose recording_ready arrived
        self.turns = 0
        self.agent_bytes = 0
        self.stopping = False
        self.pcm = np.random.default_rng(index).integers(-3000, 3000, CHUNK // 2, dtype="<i2").tobytes()
        import aiohttp
        from yarl import URL

        self.jar = aiohttp.CookieJar(unsafe=True)  # the proxy's cookie, on a numeric address
        self.jar_url = URL(url)

    @property
    def node(self) -> str:
        cookie = self.jar.filter_cookies(self.jar_url).get(COOKIE)
        return cookie.value if cookie is not None else "?"

    async def run(self) -> None:
        while not self.stopping:
            try:
                await self.connection()
            except Exception as exc:  # the connection dropped or was refused: reconnect
                if not self.stopping:
                    self.errors.add(f"{self.name}: {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)

    async def connection(self) -> None:
        import aiohttp
        import socketio

        http = aiohttp.ClientSession(cookie_jar=self.jar)
        # No reconnection of its own (run() does it, with a new conversation), and a long-poll
        # POST may take as long as a browser's would (engine.io-client sets no timeout): the
        # library's default of 5 s dropped sessions whenever a node was slow for a moment.
        sio = socketio.AsyncClient(
            reconnection=False,
            http_session=http,
            handle_sigint=False,
            request_timeout=30,
            engineio_logger=APP_LOG,  # why a connection dropped, in apps.log
        )
        gone = asyncio.Event()
        sio.on("disconnect", lambda *_: gone.set())
        sio.on("agent_audio", lambda p: self._agent(p))
        sio.on("recording_ready", lambda p: self.ready.add(p["conversationId"]))
        sio.on("conversation_ended", lambda p: self._ended(p))
        sio.on(
            "conversation_error",
            lambda p: self.errors.add(f"{self.name}: conversation_error {p.get('code')}"),
        )
        try:
            await sio.connect(
                self.url, auth={"token": self.token}, transports=[self.transport], wait_timeout=20
            )
            talk = asyncio.ensure_future(self.talk(sio))
            lost = asyncio.ensure_future(gone.wait())
            await asyncio.wait([talk, lost], return_when=asyncio.FIRST_COMPLETED)
            lost.cancel()
            if not talk.done():
                talk.cancel()
                raise ConnectionError("disconnected mid-call")
            talk.result()
        finally:
            with contextlib.suppress(Exception):
                await sio.disconnect()
            await http.close()
            self.current = None

    def _agent(self, payload: dict[str, Any]) -> None:
        if self.current is not None:
            n = len(base64.b64decode(payload["audio"]))
            self.agent_bytes += n
            self.current.heard += n

    def _ended(self, payload: dict[str, Any]) -> None:
        for call in reversed(self.calls):
            if call.conversation_id == payload.get("conversationId"):
                call.end_reason = payload.get("reason")

    async def talk(self, sio: Any) -> None:
        while not self.stopping:
            ack = await sio.call("conversation_start", {"voice": "default"}, timeout=30)
            if not ack.get("ok"):  # counted once: its conversation_error event is counted
                await asyncio.sleep(1)
                continue
            call = self.current = Call(self.name, ack["conversationId"], self.node, time.monotonic())
            self.calls.append(call)
            for _ in range(3):
                if self.stopping or call.end_reason:
                    break
                await self.turn(sio, call)
            if call.end_reason:  # talkgate ended it (a node stopping): start another
                self.current = None
                continue
            ack = await sio.call("conversation_end", timeout=60)
            call.ended, call.ended_at = bool(ack.get("ok")), time.monotonic()
            self.current = None

    async def turn(self, sio: Any, call: Call) -> None:
        self.agent_bytes = 0
        audio = base64.b64encode(self.pcm).decode()
        await sio.emit("user-audio-start")
        for _ in range(TURN_CHUNKS):
            if call.end_reason:
                return
            await sio.emit("send_audio", {"audio": audio})
            call.audio_ms += 100
            await asyncio.sleep(0.1)
        await sio.emit("user-audio-end")
        deadline = time.monotonic() + 10
        while self.agent_bytes < CHUNK * TURN_CHUNKS and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # the echo of this turn (a poll keeps the load generator simple)
        self.turns += 1
        await asyncio.sleep(0.3)


# --- what the users can check afterwards -------------------------------------------------------


def token_for(user: str) -> str:
    from pydantic import SecretStr

    from talkgate.auth import TokenVerifier
    from talkgate.settings import Settings

    settings = Settings(_env_file=None, jwt_secret=SecretStr(JWT_SECRET))  # type: ignore[call-arg]
    return TokenVerifier(settings).issue(user)


@dataclass
class Verdict:
    row: dict[str, Any] | None
    audio_s: float = 0.0  # seconds of recording in the bucket
    caller_found: bool = False  # the app's own audio is in it, byte for byte


async def verdict(client: Any, app: App, call: Call) -> Verdict:
    """The call as its user sees it through the proxy: the call log, and the recording's length."""
    headers = {"Authorization": f"Bearer {app.token}"}
    r = await client.get(f"/api/calls/{call.conversation_id}", headers=headers)
    if r.status_code != 200:
        return Verdict(None)
    row = r.json()
    if not row.get("audioUrl"):
        return Verdict(row)
    blob = (await client.get(f"/api/calls/{call.conversation_id}/audio", headers=headers)).content
    with wave.open(io.BytesIO(blob)) as w:
        seconds = w.getnframes() / w.getframerate()
    return Verdict(row, seconds, blob.find(app.pcm[:640]) >= 0)


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99)) if values else 0.0


# --- the faults ------------------------------------------------------------------------------------


@dataclass
class Figures:
    sessions: int
    killed: int = 0
    recovered: int = 0
    lost_ms: list[float] = field(default_factory=list)
    service_errors: int = 0
    calls_lost: int = 0
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"cluster: {self.sessions} sessions on 2 nodes; node killed: {self.recovered} of {self.killed} "
            f"calls recovered, {self.killed - self.recovered} lost, "
            f"audio lost p99 {p99(self.lost_ms):.0f} ms; "
            f"service restarts: {self.service_errors} app-visible errors, {self.calls_lost} calls lost"
        )

    def met(self) -> bool:
        return self.killed == self.recovered and self.calls_lost == 0 and p99(self.lost_ms) <= 1000


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


async def kill_node(cluster: Cluster, apps: list[App], figures: Figures, errors: Errors) -> set[str]:
    """SIGKILL node1 mid-call; its apps come back through the proxy on node2; node1 restarted
    repairs its spool: every call it held must be ``recovered`` with its audio up to the kill."""
    import httpx

    errors.phase = "kill"
    held = [(a, a.current) for a in apps if a.current is not None and a.current.node == "node1"]
    node = cluster.nodes["node1"]
    killed_at = time.monotonic()
    node.signal(signal.SIGKILL)
    assert node.proc is not None
    node.proc.wait()
    say(f"node1 killed (SIGKILL) holding {len(held)} calls")

    def moved() -> bool:
        return all(a.current is not None and a.current is not c for a, c in held)

    await until(moved, "the killed node's apps talking again through the proxy")
    say("its apps reconnected through the proxy and started new conversations: "
        + ", ".join(sorted({a.node for a, _ in held})))  # fmt: skip
    await cluster.start_node("node1")  # start-up repairs the spool before serving
    say("node1 restarted")
    async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as client:
        for app, call in held:
            assert call is not None
            v = await verdict(client, app, call)
            figures.killed += 1
            row = v.row or {}
            if call.heard == 0:  # it had only just begun: maybe nothing to keep, but it must be closed
                figures.recovered += row.get("status") == "recovered"
                continue
            if (
                row.get("status") != "recovered"
                or row.get("endReason") != "server_crash"
                or not v.caller_found
            ):
                figures.notes.append(
                    f"killed call {call.conversation_id}: {row.get('status')}, audio {v.audio_s:.1f} s"
                )
                continue
            figures.recovered += 1
            figures.lost_ms.append(max(0.0, (killed_at - call.started) - v.audio_s) * 1000)
    say(f"{figures.recovered} of {figures.killed} recovered; audio lost p99 {p99(figures.lost_ms):.0f} ms")
    return {c.conversation_id for _, c in held if c is not None}


async def probe_events(cluster: Cluster, timeout: float = 10.0) -> bool:
    """``recording_ready`` from one node to the user's socket on the other: a listener pinned to
    node1 (by the proxy's cookie), a conversation on node2."""
    import aiohttp
    import socketio
    from yarl import URL

    token = token_for("probe")
    heard: set[str] = set()
    sessions, clients = [], []
    try:
        for node in ("node1", "node2"):
            jar = aiohttp.CookieJar(unsafe=True)
            jar.update_cookies({COOKIE: node}, URL(cluster.url))
            http = aiohttp.ClientSession(cookie_jar=jar)
            sio = socketio.AsyncClient(reconnection=False, http_session=http, handle_sigint=False)
            sessions.append(http)
            clients.append(sio)
            await sio.connect(cluster.url, auth={"token": token}, transports=["websocket"], wait_timeout=10)
        clients[0].on("recording_ready", lambda p: heard.add(p["conversationId"]))
        talker = clients[1]
        ack = await talker.call("conversation_start", {"voice": "default"}, timeout=30)
        if not ack.get("ok"):
            return False
        await talker.emit("user-audio-start")
        await talker.emit(
            "send_audio", {"audio": base64.b64encode(bytes(CHUNK) + b"\x01\x00" * 800).decode()}
        )
        await talker.emit("user-audio-end")
        await talker.call("conversation_end", timeout=30)
        with contextlib.suppress(RuntimeError):
            await until(lambda: ack["conversationId"] in heard, "recording_ready", timeout)
        return ack["conversationId"] in heard
    except Exception as exc:
        say(f"probe failed: {type(exc).__name__}: {exc}")
        return False
    finally:
        for sio in clients:
            with contextlib.suppress(Exception):
                await sio.disconnect()
        for http in sessions:
            await http.close()


async def restart_redis(cluster: Cluster, figures: Figures, errors: Errors) -> None:
    errors.phase = "redis"
    assert cluster.redis is not None
    cluster.redis.stop()
    await asyncio.sleep(2)  # calls go on meanwhile
    cluster.start_redis()
    began = time.monotonic()
    for _ in range(6):
        if await probe_events(cluster):
            say(
                "Redis restarted: recording_ready between nodes resumed after "
                f"{time.monotonic() - began:.1f} s"
            )
            return
        figures.service_errors += 1
    figures.notes.append("recording_ready between nodes did not resume after Redis restarted")


async def restart_postgres(cluster: Cluster, outage_s: float) -> None:
    assert cluster.postgres is not None
    pg = cluster.postgres
    await asyncio.to_thread(pg._run, "pg_ctlcluster", pg.version, pg.name, "stop", "-m", "fast")
    say(f"PostgreSQL stopped (pg_ctlcluster) for {outage_s:g} s")
    await asyncio.sleep(outage_s)
    await asyncio.to_thread(pg._run, "pg_ctlcluster", pg.version, pg.name, "start")
    say("PostgreSQL started again")


async def cut_bucket(cluster: Cluster, apps: list[App], outage_s: float) -> list[tuple[App, Call]]:
    """The bucket unreachable for at least ``outage_s`` and until a few calls have ended (up to a
    minute); their recordings must reach it once it is back, without a restart."""
    assert cluster.switch is not None
    began = time.monotonic()
    await cluster.switch.cut()
    say(f"bucket unreachable (connections refused) for at least {outage_s:g} s")

    def ended() -> list[tuple[App, Call]]:
        return [(a, c) for a in apps for c in a.calls if c.ended and c.ended_at >= began]

    await asyncio.sleep(outage_s)
    with contextlib.suppress(RuntimeError):
        await until(lambda: len(ended()) >= min(3, len(apps)), "calls ending while the bucket is away")
    await cluster.switch.start()
    say(f"bucket back after {time.monotonic() - began:.0f} s; {len(ended())} calls ended meanwhile")
    return ended()


async def stop_node(cluster: Cluster, apps: list[App]) -> list[tuple[App, Call]]:
    held = [(a, a.current) for a in apps if a.current is not None and a.current.node == "node2"]
    node = cluster.nodes["node2"]
    node.signal(signal.SIGTERM)
    assert node.proc is not None
    status = await asyncio.to_thread(node.proc.wait)
    say(f"node2 stopped (SIGTERM, exit {status}) holding {len(held)} calls")
    return [(a, c) for a, c in held if c is not None]


async def settle(cluster: Cluster, calls: list[tuple[App, Call]], figures: Figures, timeout: float) -> None:
    """Every call the apps started, other than the killed node's, must have its call log closed and
    its recording in the bucket (a deferred save or a spool retry may take a while)."""
    import httpx

    pending = list(calls)
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=cluster.url, timeout=30) as client:
        while pending:
            left = []
            for app, call in pending:
                v = await verdict(client, app, call)
                # Audio sent but never relayed may not have reached talkgate (a node stopping):
                # no audio, no recording (a bare header is not kept).
                unheard = call.heard == 0
                if v.row is None or v.row["status"] == "active" or not (v.row.get("audioUrl") or unheard):
                    left.append((app, call, v))
            if not left or time.monotonic() > deadline:
                break
            pending = [(a, c) for a, c, _ in left]
            await asyncio.sleep(1)
        else:
            left = []
    figures.calls_lost += len(left)
    for _, call, v in left:
        row = v.row or {}
        figures.notes.append(
            f"call {call.conversation_id} ({call.node}): {row.get('status', 'no call log')}, "
            f"{row.get('endReason')}, audio {row.get('audioUrl') is not None}"
        )


async def cluster_run(args: argparse.Namespace) -> Figures:
    tmp = Path(tempfile.mkdtemp(prefix="talkgate-cluster-"))
    handler = logging.FileHandler(tmp / "apps.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    APP_LOG.addHandler(handler)
    APP_LOG.setLevel(logging.WARNING)
    APP_LOG.propagate = False
    cluster = Cluster(tmp)
    figures = Figures(args.sessions)
    errors = Errors()
    apps: list[App] = []
    tasks: list[asyncio.Future[None]] = []
    try:
        await cluster.start(args.postgres_url, args.redis_url)
        say(f"two nodes {cluster.node_ports}, HAProxy {cluster.url}, logs in {tmp}")
        if not await probe_events(cluster):
            figures.notes.append("recording_ready did not cross nodes before any fault")
        for i in range(args.sessions):
            transport = "polling" if i % 2 else "websocket"
            apps.append(App(i, cluster.url, transport, token_for(f"user{i}"), errors))
        allow_long_polls()
        tasks = [asyncio.ensure_future(a.run()) for a in apps]
        await until(lambda: all(a.turns >= 1 and a.current is not None for a in apps), "every app talking")
        spread = {n: sum(a.node == n for a in apps) for n in cluster.nodes}
        say(f"{len(apps)} apps talking ({args.sessions // 2} long-polling); per node {spread}")
        await asyncio.sleep(1.5)  # the killed calls hold more than one turn
        killed = await kill_node(cluster, apps, figures, errors)
        if args.faults == "all":
            await service_faults(cluster, apps, figures, errors, args)
        errors.phase = "end"
        for app in apps:
            app.stopping = True
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)
        rest = [(a, c) for a in apps for c in a.calls if c.conversation_id not in killed]
        await settle(cluster, rest, figures, WAIT_S)
        say(f"{len(rest)} other calls checked; {figures.calls_lost} lost or left active")
        service = [e for e in errors.seen if e[0] in ("redis", "postgres", "bucket")]
        figures.service_errors += len(service)
        for phase, what in errors.seen:
            figures.notes.append(f"{phase}: {what}")
        return figures
    finally:
        for app in apps:
            app.stopping = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await cluster.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


async def service_faults(
    cluster: Cluster, apps: list[App], figures: Figures, errors: Errors, args: argparse.Namespace
) -> None:
    async def steady() -> None:  # every app mid-call again before the next fault
        started = {a.name: len(a.calls) for a in apps}
        await until(
            lambda: all(len(a.calls) > started[a.name] or a.turns > 0 for a in apps), "calls going on"
        )
        await asyncio.sleep(2)

    if cluster.redis is not None:
        await restart_redis(cluster, figures, errors)
        await steady()
    else:
        figures.notes.append("Redis not restarted (--redis-url)")
    if cluster.postgres is not None:
        errors.phase = "postgres"
        await restart_postgres(cluster, args.outage)
        await asyncio.sleep(3)
    else:
        figures.notes.append("PostgreSQL not restarted (--postgres-url)")
    errors.phase = "bucket"
    cut_off = await cut_bucket(cluster, apps, args.outage)
    waited = Figures(0)  # the final check counts them; here only how long it took
    began = time.monotonic()
    await settle(cluster, cut_off, waited, WAIT_S)  # stored by the nodes' retry, not a restart
    say(
        f"{len(cut_off) - waited.calls_lost} of the {len(cut_off)} recordings in the bucket "
        f"{time.monotonic() - began:.0f} s after it came back"
    )
    errors.phase = "sigterm"
    stopped = await stop_node(cluster, apps)
    async with __import__("httpx").AsyncClient(base_url=cluster.url, timeout=30) as client:
        for app, call in stopped:
            v = await verdict(client, app, call)
            row = v.row or {}
            # The app may have been ending it itself at that moment: then its reason is "client".
            reason_ok = row.get("endReason") in ("server_shutdown", "client")
            if not reason_ok or row.get("status") != "ended" or not (v.audio_s or call.heard == 0):
                figures.calls_lost += 1
                figures.notes.append(
                    f"SIGTERM call {call.conversation_id}: {row.get('status')} {row.get('endReason')}"
                )
    say(f"node2's {len(stopped)} calls checked: ended server_shutdown with their recordings")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sessions", type=int, default=20, help="apps talking through the proxy")
    p.add_argument("--faults", choices=["all", "kill"], default="all")
    p.add_argument("--outage", type=float, default=5.0, help="seconds PostgreSQL and the bucket are away")
    p.add_argument("--postgres-url", help="an existing database instead of a cluster of the run's own")
    p.add_argument("--redis-url", help="an existing Redis instead of one of the run's own")
    p.add_argument("--keep", action="store_true", help="keep the logs and data directories")
    args = p.parse_args()
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        sys.exit(
            "bench/cluster.py needs HAProxy: `make cluster` installs it (root), or apt-get install haproxy"
        )
    figures = asyncio.run(cluster_run(args))
    for note in figures.notes:
        print(f"  {note}")
    print(figures.line(), flush=True)
    sys.exit(0 if figures.met() else 1)


if __name__ == "__main__":
    main()
