"""What the app's lifespan builds and owns: engine, repository, HTTP client, provider, registry."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from talkgate.auth import Principal, TokenVerifier
from talkgate.calls.peaks import Peaks
from talkgate.calls.recordings import Notify, Recordings
from talkgate.persistence.engine import make_engine, make_sessionmaker
from talkgate.persistence.models import Cap, Rate, utcnow
from talkgate.persistence.repository import Repository
from talkgate.protocol.dialect import Dialect
from talkgate.protocol.ends import EndReason
from talkgate.providers.elevenlabs import ElevenLabsProvider
from talkgate.providers.http import SmallPools
from talkgate.providers.liveavatar import LiveAvatarProvider
from talkgate.recording.storage import Storage, open_storage
from talkgate.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from talkgate.relay.session import RelaySession


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    repo: Repository
    http: httpx.AsyncClient
    elevenlabs: ElevenLabsProvider
    liveavatar: LiveAvatarProvider | None  # None without LIVEAVATAR_API_KEY
    verifier: TokenVerifier
    dialect: Dialect
    storage: Storage
    recordings: Recordings
    relays: dict[str, RelaySession] = field(default_factory=dict)  # Socket.IO sid → live relay
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    peaks: Peaks = field(default_factory=Peaks)  # recordings' waveform summaries, per stored object

    @classmethod
    def build(cls, settings: Settings, notify: Notify | None = None) -> Runtime:
        engine = make_engine(settings.effective_database_url)
        tls = httpx.create_ssl_context()  # one CA bundle parsed for every client (tens of ms each)
        http = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50), verify=tls
        )
        key = settings.elevenlabs_api_key.get_secret_value() if settings.elevenlabs_api_key else ""
        repo = Repository(make_sessionmaker(engine))
        elevenlabs = ElevenLabsProvider(
            http,
            settings.elevenlabs_base_url,
            key,
            timeout=settings.provider_timeout_s,
            signing=SmallPools(lambda limits: httpx.AsyncClient(limits=limits, verify=tls)),
        )
        storage = open_storage(settings.effective_storage_url, settings)
        avatar_key = settings.liveavatar_api_key.get_secret_value() if settings.liveavatar_api_key else ""
        liveavatar = (
            LiveAvatarProvider(
                http, settings.liveavatar_base_url, avatar_key, timeout=settings.provider_timeout_s
            )
            if avatar_key
            else None
        )
        return cls(
            settings=settings,
            engine=engine,
            repo=repo,
            http=http,
            elevenlabs=elevenlabs,
            liveavatar=liveavatar,
            verifier=TokenVerifier(settings),
            dialect=settings.dialect,
            storage=storage,
            recordings=Recordings(settings, repo, storage, elevenlabs, notify=notify),
        )

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A background task that is kept referenced until it ends."""
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def call_rate(self) -> Rate:
        """The per-user rate of call starts, every mode: the last hour's."""
        return Rate(self.settings.max_calls_per_user_per_hour, utcnow() - timedelta(hours=1))

    def call_cap(self, since: datetime) -> Cap:
        """The limits a direct or avatar start is checked against, in the transaction that opens
        its call log: calls in progress (started after ``since``) and the rate of starts."""
        return Cap(self.settings.max_active_calls_per_user, since, self.call_rate())

    async def authenticate(self, token: str | None) -> Principal:
        if self.settings.jwt_jwks_url:
            return await asyncio.to_thread(self.verifier.verify, token)  # may fetch the JWKS
        return self.verifier.verify(token)

    async def end_calls(self) -> None:
        """Shutdown: every live relay ends ``server_shutdown`` (recording stored, call log closed,
        app told); waits for that, and for other background work, up to 10 s."""
        for relay in list(self.relays.values()):
            await relay.stop(EndReason.SERVER_SHUTDOWN)
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=10)

    async def aclose(self) -> None:
        await self.end_calls()  # again: the server calls it before closing connections
        await self.recordings.abort_all()
        await self.storage.aclose()
        await self.http.aclose()
        if self.elevenlabs.signing is not None:
            await self.elevenlabs.signing.aclose()
        await self.engine.dispose()
