"""The LiveAvatar side of the simulator: REST with the ``{code, data, message}`` envelope and a
WebSocket stand-in for the LiveKit room's data channel (same JSON, same topics)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from talkgate.errors import ProtocolError
from talkgate.protocol.audio import PCM_16000, dbfs, rms
from talkgate.protocol.liveavatar import (
    CONTROL_TOPIC,
    END_REASONS,
    KEEP_ALIVE_PATH,
    RESPONSE_TOPIC,
    SANDBOX_AVATAR_ID,
    START_PATH,
    STOP_PATH,
    SUCCESS,
    TOKEN_PATH,
    TRACK_TOPIC,
    AvatarRoom,
    AvatarToken,
    Command,
    DataPacket,
    Envelope,
    Event,
    Resource,
    ResourceInfo,
    TrackEvent,
    resource_path,
)
from talkgate.protocol.rest_errors import validation_error
from talkgate.simulator.state import SimulatorConfig

log = logging.getLogger("talkgate.simulator.liveavatar")

# The stand-in avatar's picture (its "video track"): a face, small enough for one packet.
POSTER_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 160 160">'
    '<rect width="160" height="160" fill="#1d2b3a"/>'
    '<circle cx="80" cy="70" r="44" fill="#f2c9a0"/>'
    '<path d="M36 62 Q80 8 124 62 Q112 36 80 34 Q48 36 36 62Z" fill="#5a3825"/>'
    '<circle cx="64" cy="68" r="5" fill="#1d2b3a"/><circle cx="96" cy="68" r="5" fill="#1d2b3a"/>'
    '<path d="M62 90 Q80 104 98 90" stroke="#9c4a3a" stroke-width="5" fill="none" stroke-linecap="round"/>'
    '<path d="M24 160 Q28 118 80 116 Q132 118 136 160Z" fill="#3d7bbf"/>'
    '<text x="80" y="152" font-family="sans-serif" font-size="11" fill="#fff" text-anchor="middle">'
    "simulated avatar</text></svg>"
)
POSTER = "data:image/svg+xml;base64," + base64.b64encode(POSTER_SVG.encode()).decode()
VOICE_FRAME_BYTES = 3200  # 100 ms of the avatar's voice per binary frame
MAX_VOICE_BYTES = 10 * 32000  # the echo says at most 10 s


def envelope(data: object, status: int = 200, code: int = SUCCESS, message: str = "success") -> JSONResponse:
    return JSONResponse(Envelope(code, data, message).build(), status_code=status)


def failure(status: int, message: str) -> JSONResponse:
    return envelope(None, status=status, code=status * 10, message=message)


@dataclass(slots=True)
class AvatarSession:
    session_id: str
    session_token: str
    body: dict[str, object]
    room_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    started: bool = False
    stopped_reason: str | None = None
    last_seen: float = field(default_factory=time.monotonic)
    sockets: set[WebSocket] = field(default_factory=set)
    transcript: list[dict[str, str]] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    # For tests: the next such command fails ("fail") or gets no answer at all ("silent").
    faults: dict[str, str] = field(default_factory=dict)
    audio_bytes: int = 0  # microphone audio received inside push-to-talk windows
    audio_outside_bytes: int = 0  # ... and outside them (the provider ignores it; a page should not send it)


class LiveAvatarSimulator:
    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.sessions: dict[str, AvatarSession] = {}

    def routes(self) -> list[Route | WebSocketRoute]:
        return [
            Route(TOKEN_PATH, self.create_token, methods=["POST"]),
            Route(START_PATH, self.start, methods=["POST"]),
            Route(KEEP_ALIVE_PATH, self.keep_alive, methods=["POST"]),
            Route(STOP_PATH, self.stop, methods=["POST"]),
            *(Route(resource_path(kind), self._resource_route(kind), methods=["GET"]) for kind in Resource),
            WebSocketRoute("/_liveavatar/room", self.room),
            Route("/_simulator/liveavatar/sessions/{session_id}", self.inspect, methods=["GET"]),
            Route("/_simulator/liveavatar/sessions/{session_id}/faults", self.add_fault, methods=["POST"]),
        ]

    # --- for tests ----------------------------------------------------------------------------

    async def inspect(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["session_id"])
        if session is None:
            return failure(404, "session not found")
        return JSONResponse(
            {
                "body": session.body,
                "started": session.started,
                "stoppedReason": session.stopped_reason,
                "commands": session.commands,
                "transcript": session.transcript,
                "audioBytes": session.audio_bytes,
                "audioOutsideBytes": session.audio_outside_bytes,
            }
        )

    async def add_fault(self, request: Request) -> Response:
        session = self.sessions.get(request.path_params["session_id"])
        body = await self._json(request)
        if session is None or body is None:
            return failure(404, "session not found")
        command, fault = body.get("command"), body.get("fault")
        if command not in (Command.START_PTT, Command.STOP_PTT) or fault not in ("fail", "silent"):
            return failure(422, "command must be a push-to-talk command, fault 'fail' or 'silent'")
        session.faults[str(command)] = str(fault)
        return JSONResponse({"ok": True})

    # --- REST ---------------------------------------------------------------------------------

    def _by_bearer(self, request: Request) -> AvatarSession | None:
        auth = request.headers.get("authorization", "")
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
        return next((s for s in self.sessions.values() if s.session_token == token), None) if token else None

    async def _json(self, request: Request) -> dict[str, object] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _resource_route(self, kind: Resource) -> Callable[[Request], Awaitable[Response]]:
        async def read(request: Request) -> Response:
            if request.headers.get("x-api-key") != self.config.liveavatar_api_key:
                return failure(401, "Invalid API key")
            resource_id = request.path_params["resource_id"]
            known = self.config.liveavatar_ids
            if known is not None and resource_id not in known:
                return failure(404, f"{kind.value[:-1]} not found")
            return envelope(ResourceInfo(resource_id, f"simulated {kind.value[:-1]}").build())

        return read

    async def create_token(self, request: Request) -> Response:
        await asyncio.sleep(self.config.response_delay_s)
        if request.headers.get("x-api-key") != self.config.liveavatar_api_key:
            return failure(401, "Invalid API key")
        body = await self._json(request)
        if body is None:
            return failure(400, "body must be a JSON object")
        if body.get("mode", "FULL") != "FULL":
            return failure(422, "only FULL mode is simulated")
        if not isinstance(body.get("avatar_id"), str) or not body["avatar_id"]:
            return JSONResponse(validation_error(("body", "avatar_id"), "field required"), status_code=422)
        if body.get("interactivity_type", "CONVERSATIONAL") not in ("CONVERSATIONAL", "PUSH_TO_TALK"):
            return JSONResponse(
                validation_error(("body", "interactivity_type"), "invalid enum value"), status_code=422
            )
        if (refusal := self._unknown_in(body)) is not None:
            return refusal
        session = AvatarSession(str(uuid.uuid4()), secrets.token_urlsafe(32), body)
        self.sessions[session.session_id] = session
        return envelope(AvatarToken(session.session_id, session.session_token).build())

    def _unknown_in(self, body: dict[str, object]) -> Response | None:
        """A sandbox session takes only the sandbox avatar (as LiveAvatar documents), and with a
        list of the account's ids (``liveavatar_ids``) the voice and context must be on it."""
        if body.get("is_sandbox") is True and body.get("avatar_id") != SANDBOX_AVATAR_ID:
            return failure(422, "sandbox sessions take only the sandbox avatar")
        persona = body.get("avatar_persona")
        known = self.config.liveavatar_ids
        if known is None or not isinstance(persona, dict):
            return None
        for key in ("voice_id", "context_id"):
            value = persona.get(key)
            if value is not None and value not in known:
                loc = ("body", "avatar_persona", key)
                return JSONResponse(validation_error(loc, f"{key} not found"), status_code=422)
        return None

    async def start(self, request: Request) -> Response:
        session = self._by_bearer(request)
        if session is None:
            return failure(401, "Invalid session token")
        if session.stopped_reason:
            return failure(400, "session already stopped")
        session.started = True
        session.last_seen = time.monotonic()
        scheme = "wss" if request.url.scheme == "https" else "ws"
        room_url = f"{scheme}://{request.url.netloc}/_liveavatar/room"
        room = AvatarRoom(session.session_id, room_url, session.room_token, 1200, stand_in=True)
        return envelope(room.build(), status=201)

    def _authorized_session(
        self, request: Request, body: dict[str, object] | None
    ) -> AvatarSession | JSONResponse:
        by_bearer = self._by_bearer(request)
        if by_bearer is not None:
            return by_bearer
        if request.headers.get("x-api-key") != self.config.liveavatar_api_key:
            return failure(401, "Invalid API key")
        sid = body.get("session_id") if body else None
        if not isinstance(sid, str):
            return failure(400, "session_id is required")
        session = self.sessions.get(sid)
        return session if session is not None else failure(404, "session not found")

    async def keep_alive(self, request: Request) -> Response:
        found = self._authorized_session(request, await self._json(request))
        if isinstance(found, JSONResponse):
            return found
        self._expire(found)
        if found.stopped_reason:
            return failure(400, f"session stopped ({found.stopped_reason})")
        found.last_seen = time.monotonic()
        return envelope(None)

    async def stop(self, request: Request) -> Response:
        body = await self._json(request) or {}
        found = self._authorized_session(request, body)
        if isinstance(found, JSONResponse):
            return found
        reason = body.get("reason", "USER_CLOSED")
        if reason not in END_REASONS:
            return failure(422, f"unknown reason {reason!r}")
        if not found.stopped_reason:
            await self._stop(found, str(reason))
        return envelope(None)

    def _expire(self, session: AvatarSession) -> None:
        if (
            not session.stopped_reason
            and time.monotonic() - session.last_seen > self.config.liveavatar_idle_timeout_s
        ):
            session.stopped_reason = "IDLE_TIMEOUT"

    async def _stop(self, session: AvatarSession, reason: str) -> None:
        session.stopped_reason = reason
        packet = DataPacket(RESPONSE_TOPIC, Event.SESSION_STOPPED, {"end_reason": reason}).serialize()
        for ws in list(session.sockets):
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await ws.send_text(packet)
                await ws.close(1000)

    # --- the data-channel stand-in ------------------------------------------------------------

    async def room(self, websocket: WebSocket) -> None:
        token = websocket.query_params.get("token")
        session = next((s for s in self.sessions.values() if s.room_token == token and s.started), None)
        if session is None or session.stopped_reason:
            await websocket.close(4401, "invalid or expired room token")
            return
        await websocket.accept()
        session.sockets.add(websocket)
        window: list[bytes] | None = None
        ptt = session.body.get("interactivity_type") == "PUSH_TO_TALK"
        subscribed = False  # to the avatar's tracks: its picture and voice

        async def speak(voice: bytes) -> None:
            if subscribed:
                for at in range(0, len(voice), VOICE_FRAME_BYTES):
                    await websocket.send_bytes(voice[at : at + VOICE_FRAME_BYTES])

        async def emit(event: Event, **payload: object) -> None:
            await websocket.send_text(DataPacket(RESPONSE_TOPIC, event, payload).serialize())

        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                session.last_seen = time.monotonic()
                if message.get("bytes") is not None:
                    # Microphone audio (PCM16 16 kHz); outside a PTT window it is ignored.
                    if window is not None:
                        window.append(message["bytes"])
                        session.audio_bytes += len(message["bytes"])
                    else:
                        session.audio_outside_bytes += len(message["bytes"])
                    continue
                try:
                    packet = DataPacket.parse(message.get("text") or "")
                except ProtocolError as exc:
                    log.info("bad data packet on %s: %s", session.session_id, exc.message)
                    continue
                if packet.topic == TRACK_TOPIC and packet.event_type == TrackEvent.SUBSCRIBE:
                    subscribed = True
                    await websocket.send_text(
                        DataPacket(TRACK_TOPIC, TrackEvent.VIDEO_POSTER, {"poster": POSTER}).serialize()
                    )
                    continue
                if packet.topic != CONTROL_TOPIC:
                    continue
                session.commands.append(packet.event_type)
                fault = session.faults.pop(packet.event_type, None)
                if fault == "silent":
                    continue
                if fault == "fail":
                    failed = (
                        Event.PTT_START_FAILED
                        if packet.event_type == Command.START_PTT
                        else Event.PTT_STOP_FAILED
                    )
                    await emit(failed)
                    continue
                if packet.event_type == Command.START_PTT:
                    if not ptt or window is not None:
                        await emit(Event.PTT_START_FAILED)
                    else:
                        window = []
                        await emit(Event.PTT_STARTED)
                elif packet.event_type == Command.STOP_PTT:
                    if window is None:
                        await emit(Event.PTT_STOP_FAILED)
                        continue
                    heard, window = b"".join(window), None
                    await emit(Event.PTT_STOPPED)
                    await self._answer(session, heard, emit, speak)
        except WebSocketDisconnect:
            pass
        finally:
            session.sockets.discard(websocket)

    async def _answer(self, session: AvatarSession, heard: bytes, emit: object, speak: object) -> None:
        """The transcripts of the turn and the avatar's voice: what it heard, echoed back."""
        assert callable(emit) and callable(speak)
        heard = heard[: len(heard) - len(heard) % 2]
        seconds = PCM_16000.duration_ms(len(heard)) / 1000.0
        user_text = f"[{seconds:.2f} s of speech at {dbfs(rms(heard)):.0f} dBFS]"
        avatar_text = f"I heard {seconds:.2f} seconds of audio."
        session.transcript += [{"role": "user", "text": user_text}, {"role": "avatar", "text": avatar_text}]
        await emit(Event.USER_TRANSCRIPTION, text=user_text)
        await emit(Event.AVATAR_SPEAK_STARTED)
        await speak(heard[:MAX_VOICE_BYTES])
        await emit(Event.AVATAR_TRANSCRIPTION, text=avatar_text)
        await asyncio.sleep(0)
        await emit(Event.AVATAR_SPEAK_ENDED)
