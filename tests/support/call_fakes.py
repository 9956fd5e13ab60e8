"""In-memory stand-ins for what the call layer drives: the provider's conversation, the repository,
recordings and the runtime. No sockets, no database, no files; every wait is on an event."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import OperationalError

from talkgate.errors import ConflictError, ErrorCode, ProviderError, TalkgateError
from talkgate.persistence.models import Cap, Rate
from talkgate.protocol import convai
from talkgate.protocol.audio import PCM_16000, AudioFormat
from talkgate.protocol.dialect import Dialect
from talkgate.providers.base import Closed
from talkgate.settings import Settings


def database_away() -> OperationalError:
    return OperationalError("UPDATE call_logs", {}, ConnectionRefusedError("database away"))


class FakeUpstream:
    """The provider's side of one conversation: events are fed by the test; ``close`` ends them."""

    input_format: AudioFormat = PCM_16000
    output_format: AudioFormat = PCM_16000

    def __init__(self, conversation_id: str = "conv_1") -> None:
        self.conversation_id = conversation_id
        self.sent: list[convai.ClientEvent] = []
        self._events: asyncio.Queue[convai.ServerEvent | None] = asyncio.Queue()
        self._closed: Closed | None = None

    async def send(self, event: convai.ClientEvent) -> None:
        if self._closed is not None:
            raise ProviderError("closed")
        self.sent.append(event)

    def feed(self, event: convai.ServerEvent) -> None:
        self._events.put_nowait(event)

    def hang_up(self, code: int = convai.CloseCode.NORMAL) -> None:
        """The provider ends the conversation."""
        self._closed = Closed(code, "")
        self._events.put_nowait(None)

    async def events(self) -> AsyncIterator[convai.ServerEvent]:
        while (event := await self._events.get()) is not None:
            yield event

    async def close(self) -> None:
        if self._closed is None:
            self.hang_up()

    @property
    def closed(self) -> Closed | None:
        return self._closed


class FakeElevenLabs:
    def __init__(self) -> None:
        self.upstreams: list[FakeUpstream] = []
        self.refuse: TalkgateError | None = None
        self.asked = asyncio.Event()  # a start asked for a conversation
        self.hold: asyncio.Event | None = None  # set: the provider answers (None: at once)

    async def open_conversation(
        self, agent_id: str, init: Any, *, inactivity_timeout: int = 0
    ) -> FakeUpstream:
        self.asked.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.refuse is not None:
            raise self.refuse
        upstream = FakeUpstream(f"conv_{len(self.upstreams) + 1}")
        self.upstreams.append(upstream)
        return upstream


@dataclass
class Row:
    session_id: str
    id: str
    user_id: str
    conversation_id: str


class FakeRepo:
    """Call logs as dicts; ``away`` close attempts fail as a database outage would."""

    def __init__(self) -> None:
        self.opened: dict[str, dict[str, Any]] = {}
        self.closed: dict[str, dict[str, Any]] = {}
        self.recording_marks: list[tuple[str, str | None]] = []
        self.away = 0  # how many close attempts fail before the database is back
        self.close_attempts = 0
        self.back = asyncio.Event()  # set when a close succeeded
        self.written = asyncio.Event()  # set when a call log was opened

    async def open_conversation(self, user_id: str, conversation_id: str, **fields: Any) -> tuple[Row, Row]:
        self.opened[conversation_id] = {"user_id": user_id, "id": conversation_id, **fields}
        self.written.set()
        row = Row(f"sess_{conversation_id}", f"call_{conversation_id}", user_id, conversation_id)
        return row, row

    async def open_conversation_capped(
        self, user_id: str, conversation_id: str, *, cap: Any, **fields: Any
    ) -> tuple[Row, Row]:
        active = [c for c in self.opened.values() if c["user_id"] == user_id and c["id"] not in self.closed]
        if len(active) >= cap.max_active:
            raise ConflictError("too many", code=ErrorCode.TOO_MANY_CONVERSATIONS)
        return await self.open_conversation(user_id, conversation_id, **fields)

    async def refuse_over_rate(self, user_id: str, rate: Any) -> None:
        started = sum(c["user_id"] == user_id for c in self.opened.values())
        if rate.max_starts and started >= rate.max_starts:
            raise ConflictError("too many calls this hour", code=ErrorCode.TOO_MANY_CALLS)

    async def discard_conversation(self, user_id: str, session_id: str, conversation_id: str) -> None:
        assert self.opened[conversation_id]["user_id"] == user_id
        del self.opened[conversation_id]

    async def own_relay_conversation(self, conversation_id: str, provider_cid: str) -> None:
        self.opened[conversation_id].setdefault("provider_conversation_id", provider_cid)

    async def own_provider_conversation(self, user_id: str, conversation_id: str, provider_cid: str) -> bool:
        self.opened[conversation_id]["provider_conversation_id"] = provider_cid
        return True

    async def close_conversation(
        self, user_id: str, session_id: str, conversation_id: str, **finish: Any
    ) -> None:
        self.close_attempts += 1
        if self.away > 0:
            self.away -= 1
            raise database_away()
        self.closed[conversation_id] = {"user_id": user_id, "session_id": session_id, **finish}
        self.back.set()

    async def mark_recording(self, conversation_id: str, source: str | None) -> None:
        self.recording_marks.append((conversation_id, source))


class FakeRecordings:
    """Recordings that store nothing; ``broken`` storage refuses to start one."""

    def __init__(self) -> None:
        self.broken = False
        self.finished: list[Any] = []
        self.relinked: list[str] = []
        self.url: str | None = "http://gate/api/calls/conv_1/audio"

    async def start(self, call: Row, source: Any, *, announced: bool = False) -> Any:
        if self.broken:
            raise OSError("no space left on device")
        return FakeLive(call.conversation_id)

    async def finish(self, live: Any) -> str | None:
        self.finished.append(live)
        return self.url

    async def relink_by_conversation(self, conversation_id: str) -> str | None:
        self.relinked.append(conversation_id)
        return None


@dataclass
class FakeRecorder:
    added: list[tuple[int, bytes]] = field(default_factory=list)
    on_error: Any = None

    async def add(self, track: int, pcm: bytes) -> None:
        self.added.append((track, pcm))


@dataclass
class FakeLive:
    conversation_id: str
    recorder: FakeRecorder = field(default_factory=FakeRecorder)


class FakeRuntime:
    def __init__(self, **settings: Any) -> None:
        self.settings = Settings(elevenlabs_agent_id="agent_default", **settings)
        self.elevenlabs = FakeElevenLabs()
        self.repo = FakeRepo()
        self.recordings = FakeRecordings()
        self.dialect = Dialect()
        self.relays: dict[str, Any] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def call_rate(self) -> Rate:
        return Rate(self.settings.max_calls_per_user_per_hour, datetime.now(UTC) - timedelta(hours=1))

    def call_cap(self, since: datetime) -> Cap:
        return Cap(self.settings.max_active_calls_per_user, since, self.call_rate())


class FakeLink:
    """One app connection: what it was sent, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.ended = asyncio.Event()

    async def emit(self, event: str, payload: dict[str, Any]) -> None:
        self.sent.append((event, payload))
        if event == "conversation_ended":
            self.ended.set()

    async def fail(self, exc: TalkgateError, *, fatal: bool = False) -> dict[str, Any]:
        await self.emit(
            "conversation_error", {"code": exc.code.value, "message": exc.message, "fatal": fatal}
        )
        return {"ok": False, "error": {"code": exc.code.value, "message": exc.message}}

    def backlog(self) -> int:
        return 0

    def events(self) -> list[str]:
        return [event for event, _ in self.sent]

    def payload(self, event: str) -> dict[str, Any]:
        return next(p for e, p in self.sent if e == event)
