"""A real talkgate server (uvicorn on 127.0.0.1:0) in front of a real simulator, and app clients of it."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import socketio
from pydantic import SecretStr

from talkgate.auth import TokenVerifier
from talkgate.persistence.migrate import upgrade
from talkgate.serving import ServerThread, bind
from talkgate.settings import Settings
from talkgate.web.app import create_app
from tests.support.servers import AGENT_ID, SIM_KEY
from tests.support.timing import TIMEOUT

JWT_SECRET = "test-jwt-secret-0123456789-abcdefghijklmnop"


def make_settings(tmp_path, sim: ServerThread | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "elevenlabs_api_key": SecretStr(SIM_KEY),
        "elevenlabs_base_url": sim.http_url if sim else "http://127.0.0.1:9",
        "elevenlabs_agent_id": AGENT_ID,
        "data_dir": tmp_path / "data",
        "jwt_secret": SecretStr(JWT_SECRET),
        "simulator_mode": True,
        "provider_timeout_s": 5.0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Gate:
    server: ServerThread
    settings: Settings
    app: Any

    @property
    def url(self) -> str:
        return self.server.http_url

    def token(self, user: str = "alice", **kw: Any) -> str:
        return TokenVerifier(self.settings).issue(user, **kw)

    def headers(self, user: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}


def start_gate(tmp_path, sim: ServerThread | None, sock: Any = None, **overrides: Any) -> Gate:
    # Bound first, so that the URLs talkgate hands out (media socket, audio) carry the real port.
    sock = sock or bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    overrides.setdefault("port", port)
    overrides.setdefault("public_url", f"http://127.0.0.1:{port}")
    settings = make_settings(tmp_path, sim, **overrides)
    # Alembic runs its own event loop; a thread keeps it apart from an async test's loop.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(upgrade, settings.effective_database_url).result()
    app = create_app(settings)
    return Gate(ServerThread(app, sock=sock).start(), settings, app)


@dataclass
class AppClient:
    """A python-socketio AsyncClient that records every event it receives, in order."""

    sio: socketio.AsyncClient
    events: list[tuple[str, Any]] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for(self, event: str, count: int = 1, pred: Any = None) -> list[Any]:
        def matching() -> list[Any]:
            return [p for e, p in self.events if e == event and (pred is None or pred(p))]

        async with asyncio.timeout(TIMEOUT):
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(matching()) >= count)
        return matching()

    def of(self, event: str) -> list[Any]:
        return [p for e, p in self.events if e == event]

    async def call(self, event: str, data: Any = None) -> Any:
        return await self.sio.call(event, data if data is not None else {}, timeout=TIMEOUT)

    def agent_audio(self) -> bytes:
        """Every agent audio chunk received so far, decoded and joined."""
        return b"".join(base64.b64decode(p["audio"]) for p in self.of("agent_audio"))


async def paced_turn(app: AppClient, clip: bytes, turn: int) -> None:
    """One push-to-talk turn at a microphone's pace (a 100 ms chunk every 100 ms: the recording's
    timeline is arrival time), then its transcript and the whole of its echo."""
    echoed_before = len(app.agent_audio())
    assert (await app.call("user-audio-start"))["turn"] == turn
    for i in range(0, len(clip), 3200):
        await asyncio.sleep(0.1)
        assert (await app.call("send_audio", {"audio": base64.b64encode(clip[i : i + 3200]).decode()}))["ok"]
    await app.call("user-audio-end")
    await app.wait_for("conversation_message", turn, lambda p: p["type"] == "user_transcript")
    while len(app.agent_audio()) < echoed_before + len(clip):
        await app.wait_for("agent_audio", len(app.of("agent_audio")) + 1)


async def connect(
    gate: Gate, user: str = "alice", token: str | None = None, transports: tuple[str, ...] = ("websocket",)
) -> AppClient:
    return await connect_to(gate.url, token or gate.token(user), transports)


async def connect_to(url: str, token: str, transports: tuple[str, ...] = ("websocket",)) -> AppClient:
    """An app on the WebSocket transport (as the page and bench use; or ``transports``), recording
    every event."""
    client = AppClient(socketio.AsyncClient(reconnection=False))

    async def record(event: str, *args: Any) -> None:
        client.events.append((event, args[0] if args else None))
        async with client._arrived:
            client._arrived.notify_all()

    client.sio.on("*", record)
    await client.sio.connect(url, auth={"token": token}, transports=list(transports), wait_timeout=TIMEOUT)
    return client


@asynccontextmanager
async def gated(
    tmp_path, sim: ServerThread | None, **overrides: Any
) -> AsyncIterator[tuple[Gate, AppClient]]:
    """A talkgate server with its own settings and one connected app, both closed afterwards."""
    gate = start_gate(tmp_path, sim, **overrides)
    try:
        client = await connect(gate)
        try:
            yield gate, client
        finally:
            await client.sio.disconnect()
    finally:
        gate.server.stop()


# Public on purpose, each with the reason it needs no JWT.
PUBLIC = {
    ("GET", "/healthz"): "liveness for load balancers",
    ("GET", "/metrics"): "its own token, or loopback only (test_metrics.py)",
    ("GET", "/"): "the page; it signs in itself",
    ("GET", "/calls"): "the page; it signs in itself",
    ("GET", "/favicon.ico"): "an icon",
    ("GET", "/vendor/{name}"): "pinned client libraries",
    ("GET", "/api/config"): "what the page needs before sign-in; no secret (test_pages.py)",
    ("POST", "/api/dev/token"): "simulator + development only (test_pages.py)",
    ("GET", "/api/recordings/{conversation_id}.wav"): "a signed, expiring link (test_pages.py)",
    ("POST", "/api/elevenlabs/webhook"): "the provider's HMAC signature (test_call_fallbacks.py)",
    ("GET", "/openapi.json"): "the API's description",
    ("GET", "/docs"): "the API's description",
    ("GET", "/docs/oauth2-redirect"): "FastAPI's docs page",
    ("GET", "/redoc"): "the API's description",
}
