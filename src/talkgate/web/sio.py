"""The Socket.IO server: the app's push-to-talk relay (seeds 000, 002, 004).

Handlers for one socket run one at a time, in arrival order (``async_handlers=False``), so a
turn's audio can never overtake its ``user-audio-end``; a slow upstream slows that socket only.
Every client event may take an acknowledgement; a failure is also emitted as
``conversation_error`` so that clients which only listen see it.

What one socket may hold is bounded before it costs memory or log volume (``RelayServer``): a
binary packet's attachments (count and bytes), the log lines its bad input writes, the sockets and
conversations of one user, and its token's lifetime (the socket ends at ``exp`` unless the app
sends ``reauthenticate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from talkgate import fastpaths, logs, metrics
from talkgate.auth import LEEWAY_S, Principal
from talkgate.errors import (
    AuthError,
    DatabaseUnavailable,
    ErrorCode,
    ProtocolError,
    ProviderError,
    StorageError,
    TalkgateError,
)
from talkgate.fastpaths import engine_loop as engine
from talkgate.persistence.models import AudioSource, CallStatus
from talkgate.persistence.retry import retry_transient, transient
from talkgate.protocol import app_events
from talkgate.protocol.app_events import ClientEventName as C
from talkgate.protocol.app_events import ServerEventName as S
from talkgate.recording.recorder import RelayTap
from talkgate.relay.session import RelaySession
from talkgate.settings import Settings
from talkgate.web.recordings import LiveRecording
from talkgate.web.runtime import Runtime

log = logging.getLogger("talkgate.sio")

LATER_DELAYS = (5.0,) * 60  # after the short retries: every 5 s for 5 minutes
REAUTHENTICATE = "reauthenticate"  # {token}: a fresh token for the same user moves the socket's deadline
START_FIELDS = ("metadata", "dynamicVariables", "overrides")

Handler = Callable[[str, Any], Awaitable[dict[str, Any]]]

BINARY_PACKET_TYPES = ("5", "6")  # Socket.IO BINARY_EVENT, BINARY_ACK: attachments follow


def declared_attachments(text: str) -> int:
    """How many attachments a binary packet's header (``51-["event",...]``) declares, read as
    python-socketio reads it; 0 where it declares none it can parse (never valid for a binary packet),
    and a huge number where the count is too long to be one."""
    dash = text.find("-", 1)
    digits = text[1:dash] if dash > 1 else ""
    if not (digits.isascii() and digits.isdigit()):
        return 0
    return int(digits) if len(digits) <= 10 else 10**11


def json_bounds_error(value: Any, max_bytes: int, max_depth: int) -> str | None:
    """Why ``value`` (decoded JSON) is over the bounds, or None. Walks without recursion, so a
    value nested past Python's recursion limit is measured, not crashed on."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                return f"is nested deeper than {max_depth} levels"
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > max_bytes:
        return f"is {size} bytes as JSON, over the limit of {max_bytes}"
    return None


def check_start_fields(payload: Any, max_bytes: int, max_depth: int) -> None:
    if not isinstance(payload, dict):
        return  # ConversationStart.parse says what is wrong
    for name in START_FIELDS:
        value = payload.get(name)
        try:
            why = None if value is None else json_bounds_error(value, max_bytes, max_depth)
        except TypeError:  # a binary attachment placed in it
            raise ProtocolError(f"{name} must hold JSON values only", code=ErrorCode.BAD_REQUEST) from None
        if why is not None:
            raise ProtocolError(f"{name} {why}", code=ErrorCode.FIELD_TOO_LARGE)


class RelayServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, with talkgate's bounds on what one socket may send before a handler
    runs, on the websocket loop and on long-polling alike (both deliver to ``_handle_eio_message``):

    - a binary packet may declare 1 to ``max_attachments`` attachments, and the packet with its
      attachments may hold at most ``max_http_buffer_size`` bytes; beyond, the partial packet is
      dropped, the socket gets a fatal ``conversation_error`` and is closed;
    - a message python-socketio cannot decode is dropped with one short log line, rate-limited per
      peer address (the library would log it with a traceback);
    - a socket with more than ``max_backlog`` packets waiting to be sent (a peer that sends but does
      not read) is closed (``slow_consumer``) at its next message.

    It relies on python-socketio routing Engine.IO messages to ``_handle_eio_message`` and keeping
    partial packets in ``_binary_packet``; ``library_fits`` checks both, and where they differ the
    server logs so and runs with the library's own behaviour.
    """

    def __init__(
        self, *, max_attachments: int, noise: logs.PeerNoise, max_backlog: int = 1000, **options: Any
    ) -> None:
        super().__init__(**options)
        self.max_attachments = max_attachments
        self.max_backlog = max_backlog
        self.max_packet_bytes: int = options["max_http_buffer_size"]
        self.noise = noise
        # Engine.IO sid → [attachments still to come, bytes so far] of a binary packet being received.
        self.partial: dict[str, list[int]] = {}
        self.closing: set[str] = set()  # long-polling sockets closed once they collect what is queued
        self.closers: set[asyncio.Task[None]] = set()
        # Per process (with N workers, a user may hold up to N times as many); kept by create_sio's handlers.
        self.user_of: dict[str, str] = {}  # sid → user, for every connected socket
        self.sockets_of: dict[str, set[str]] = {}  # user → sids
        self.conversations_of: dict[str, int] = {}  # user → live (or starting) conversations
        self.deadlines: dict[str, tuple[float, asyncio.TimerHandle]] = {}  # sid → (token exp, its timer)
        self.bounded = self.library_fits()
        if not self.bounded:
            log.warning(
                "this python-socketio does not route messages as expected: binary packets are not bounded "
                "by TALKGATE_MAX_ATTACHMENTS, only by the library"
            )

    def library_fits(self) -> bool:
        return (
            self.eio.handlers.get("message") == self._handle_eio_message
            and self.eio.handlers.get("disconnect") == self._handle_eio_disconnect
            and isinstance(getattr(self, "_binary_packet", None), dict)
        )

    def peer(self, eio_sid: str) -> str:
        environ = self.environ.get(eio_sid) if isinstance(getattr(self, "environ", None), dict) else None
        return engine.peer_of(environ)

    def _drop_partial(self, eio_sid: str) -> None:
        self.partial.pop(eio_sid, None)
        pending = getattr(self, "_binary_packet", None)
        if isinstance(pending, dict):
            pending.pop(eio_sid, None)

    async def _handle_eio_message(self, eio_sid: str, data: str | bytes) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closed or eio_sid in self.closing:
            return  # closed by the server (below): what the peer sent since is moot
        if socket.queue.qsize() > self.max_backlog:
            error = ProtocolError(
                f"over {self.max_backlog} messages wait for this socket to read them "
                "(TALKGATE_MAX_SOCKET_BACKLOG)",
                code=ErrorCode.SLOW_CONSUMER,
            )
            return await self.refuse(eio_sid, error)
        started = 0
        partial = self.partial.get(eio_sid)
        if partial is not None:
            partial[1] += len(data)
            if partial[1] > self.max_packet_bytes:
                error = ProtocolError(
                    f"a message with its binary attachments is over the limit of {self.max_packet_bytes} "
                    "bytes (TALKGATE_MAX_MESSAGE_BYTES)",
                    code=ErrorCode.MESSAGE_TOO_LARGE,
                )
                return await self.refuse(eio_sid, error)
            partial[0] -= 1
            if partial[0] <= 0:
                del self.partial[eio_sid]
        elif type(data) is str and data[:1] in BINARY_PACKET_TYPES:
            started = declared_attachments(data)
            if not 1 <= started <= self.max_attachments:
                error = ProtocolError(
                    f"a message may carry 1 to {self.max_attachments} binary attachments "
                    "(TALKGATE_MAX_ATTACHMENTS)",
                    code=ErrorCode.TOO_MANY_ATTACHMENTS,
                )
                return await self.refuse(eio_sid, error)
        try:
            await super()._handle_eio_message(eio_sid, data)
        except engine.BAD_INPUT as exc:
            self._drop_partial(eio_sid)  # the library would keep a packet it failed to complete
            self.noise.line(
                log,
                self.peer(eio_sid),
                "socket %s: bad message dropped (%s)",
                eio_sid,
                logs.short_exception(exc),
            )
            return
        if started:
            self.partial[eio_sid] = [started, len(data)]

    async def refuse(self, eio_sid: str, error: TalkgateError) -> None:
        """Drop the socket's partial packet, tell it why (fatal) and close it."""
        self._drop_partial(eio_sid)
        self.noise.line(log, self.peer(eio_sid), "socket %s: closed: %s", eio_sid, error.message)
        metrics.ERRORS.labels(error.code.value).inc()
        sid = self.manager.sid_from_eio_sid(eio_sid, "/")
        if sid is not None:
            payload = app_events.error_payload(error, fatal=True)
            await self.emit(S.CONVERSATION_ERROR, payload, to=sid, ignore_queue=True)
        await self.close_engine_socket(eio_sid)

    async def close_engine_socket(self, eio_sid: str) -> None:
        """Close the Engine.IO socket: Socket.IO's disconnect handlers run, and a websocket peer gets
        what is queued, then CLOSE. A long-polling peer could collect nothing once its socket is
        closed (python-engineio answers 400): its socket ignores what it sends from now on and is
        closed once the peer has collected what is queued, or after the ping timeout at the latest."""
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closed or eio_sid in self.closing:
            return
        if socket.upgraded:
            await socket.close(wait=False, abort=False, reason=self.eio.reason.SERVER_DISCONNECT)
            return
        self.closing.add(eio_sid)

        async def close_once_collected() -> None:
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(socket.queue.join(), self.eio.ping_timeout)
                await socket.close(wait=False, abort=True, reason=self.eio.reason.SERVER_DISCONNECT)
            finally:
                self.closing.discard(eio_sid)

        task = asyncio.ensure_future(close_once_collected())
        self.closers.add(task)
        task.add_done_callback(self.closers.discard)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        peer = self.peer(eio_sid)
        self.partial.pop(eio_sid, None)
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            self.noise.report(log, peer)


def client_manager(settings: Settings) -> socketio.AsyncManager:
    """In-process by default; with Redis, events to rooms reach sockets held by other processes."""
    if settings.redis_url is None:
        return socketio.AsyncManager()
    return socketio.AsyncRedisManager(settings.redis_url, channel=settings.redis_channel)


def create_sio(get_runtime: Callable[[], Runtime], settings: Settings) -> RelayServer:
    noise = logs.PeerNoise(settings.peer_log_lines_per_minute)
    sio = RelayServer(
        max_attachments=settings.max_attachments,
        max_backlog=settings.max_socket_backlog,
        noise=noise,
        logger=logs.library_logger("talkgate.socketio", noise),
        engineio_logger=logs.library_logger("talkgate.engineio", noise),
        async_mode="asgi",
        client_manager=client_manager(settings),
        async_handlers=False,
        cors_allowed_origins=settings.cors_origins or None,  # None: same origin only
        max_http_buffer_size=settings.max_message_bytes,
        ping_interval=20,
        ping_timeout=20,
    )

    async def emit(sid: str, event: str, payload: dict[str, Any]) -> None:
        if event == S.CONVERSATION_ERROR:
            metrics.ERRORS.labels(payload.get("code", "error")).inc()
        # A relay's socket is always on this process: never publish its traffic to Redis.
        await sio.emit(event, payload, to=sid, ignore_queue=True)

    def backlog(sid: str) -> Callable[[], int]:
        return fast.backlog_of(sid)  # talkgate/fastpaths, installed at the end of create_sio

    async def fail(sid: str, exc: TalkgateError, *, fatal: bool = False) -> dict[str, Any]:
        await emit(sid, S.CONVERSATION_ERROR, app_events.error_payload(exc, fatal=fatal))
        return app_events.failed(exc)

    def handler(fn: Handler) -> Callable[..., Awaitable[dict[str, Any]]]:
        async def wrapped(sid: str, payload: Any = None, *_: Any) -> dict[str, Any]:
            # Handlers of one socket run in one task: say which conversation this event is for.
            relay = get_runtime().relays.get(sid)
            logs.conversation_id.set(relay.conversation_id if relay is not None else None)
            try:
                return await fn(sid, payload)
            except TalkgateError as exc:
                return await fail(sid, exc)
            except Exception:
                # talkgate's bug, with its traceback; but what one peer can set off, it may not repeat
                # into the log without end.
                if sio.noise.allow(sio.peer(sio.manager.eio_sid_from_sid(sid, "/") or sid)):
                    log.exception("socket %s: handler %s failed", sid, fn.__name__)
                return await fail(sid, TalkgateError("internal error"))

        wrapped.__name__ = fn.__name__
        return wrapped

    chunk_seconds = metrics.RELAY_CHUNK_SECONDS

    def relay_of(sid: str) -> RelaySession:
        relay = get_runtime().relays.get(sid)
        if relay is None:
            raise ProtocolError(
                "no conversation is running; send conversation_start first", code=ErrorCode.NO_CONVERSATION
            )
        return relay

    user_of, sockets_of, conversations_of, deadlines = (
        sio.user_of,
        sio.sockets_of,
        sio.conversations_of,
        sio.deadlines,
    )
    relay_tasks: dict[str, asyncio.Task[None]] = {}  # sid → run_relay of its conversation

    def refused(exc: TalkgateError) -> socketio.exceptions.ConnectionRefusedError:
        # The client's connect_error receives {message, data: {code}} (socket.io-client: err.data).
        return socketio.exceptions.ConnectionRefusedError(exc.message, {"code": exc.code.value})

    def watch_token(sid: str, principal: Principal) -> float:
        """(Re)arm the socket's one timer: at the token's exp (plus the verifier's leeway) it ends."""
        exp = float(principal.claims["exp"])
        if (old := deadlines.pop(sid, None)) is not None:
            old[1].cancel()
        loop = asyncio.get_running_loop()
        delay = max(0.0, exp + LEEWAY_S - time.time())
        deadlines[sid] = (exp, loop.call_later(delay, lambda: get_runtime().spawn(token_expired(sid, exp))))
        return exp

    async def token_expired(sid: str, exp: float) -> None:
        current = deadlines.get(sid)
        if current is None or current[0] != exp:
            return  # reauthenticated (a new deadline) or gone meanwhile
        del deadlines[sid]
        await fail(
            sid,
            AuthError(
                "this socket's token has expired; send reauthenticate before exp",
                code=ErrorCode.TOKEN_EXPIRED,
            ),
            fatal=True,
        )
        relay = get_runtime().relays.get(sid)
        if relay is not None:
            await relay.stop("token_expired")
            if (task := relay_tasks.get(sid)) is not None:
                await asyncio.wait([task])  # its call log saved and conversation_ended sent, as for any end
        log.info("socket %s: token expired, disconnected", sid)
        eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is not None:
            await sio.close_engine_socket(eio_sid)

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is None:
            header = environ.get("HTTP_AUTHORIZATION", "")
            token = header[7:].strip() if header[:7].lower() == "bearer " else None
        try:
            principal = await get_runtime().authenticate(token)
        except AuthError as exc:
            raise refused(exc) from None
        user_id = principal.user_id
        held = len(sockets_of.get(user_id, ()))
        if held >= settings.max_sockets_per_user:
            metrics.ERRORS.labels(ErrorCode.TOO_MANY_SOCKETS.value).inc()
            raise refused(
                ProtocolError(
                    f"this user already holds {held} sockets, the limit "
                    "(TALKGATE_MAX_SOCKETS_PER_USER); close one first",
                    code=ErrorCode.TOO_MANY_SOCKETS,
                )
            )
        sockets_of.setdefault(user_id, set()).add(sid)
        user_of[sid] = user_id
        try:
            await sio.save_session(sid, {"user_id": user_id})
            await sio.enter_room(sid, app_events.user_room(user_id))
            watch_token(sid, principal)
        except BaseException:
            forget_socket(sid)
            raise
        log.info("socket %s connected for user %s", sid, user_id)

    def forget_socket(sid: str) -> None:
        if (deadline := deadlines.pop(sid, None)) is not None:
            deadline[1].cancel()
        user_id = user_of.pop(sid, None)
        if user_id is not None and (held := sockets_of.get(user_id)) is not None:
            held.discard(sid)
            if not held:
                del sockets_of[user_id]

    @sio.event
    async def disconnect(sid: str, *_: Any) -> None:
        forget_socket(sid)
        relay = get_runtime().relays.get(sid)
        if relay is not None:
            await relay.stop("disconnected")

    def release_conversation(user_id: str) -> None:
        left = conversations_of.get(user_id, 0) - 1
        if left > 0:
            conversations_of[user_id] = left
        else:
            conversations_of.pop(user_id, None)

    async def conversation_start(sid: str, payload: Any) -> dict[str, Any]:
        rt = get_runtime()
        if sid in rt.relays:
            raise ProtocolError(
                "a conversation is already running on this socket", code=ErrorCode.CONVERSATION_ACTIVE
            )
        check_start_fields(payload, settings.max_start_field_bytes, settings.max_start_field_depth)
        request = app_events.ConversationStart.parse(payload)
        agent_id = settings.agent_id_for(request.voice)
        if request.agent_id is not None:
            allowed = {settings.agent_id_for(v) for v in ("default", "female", "male")}
            if request.agent_id not in allowed:
                raise ProtocolError(
                    "agentId is not one of this server's agents", code=ErrorCode.UNKNOWN_AGENT
                )
            agent_id = request.agent_id
        user_id = user_of[sid]
        held = conversations_of.get(user_id, 0)
        if held >= settings.max_conversations_per_user:
            raise ProtocolError(
                f"this user already holds {held} live conversations, the limit "
                "(TALKGATE_MAX_CONVERSATIONS_PER_USER); end one first",
                code=ErrorCode.TOO_MANY_CONVERSATIONS,
            )
        conversations_of[user_id] = held + 1
        relay_running = False
        try:
            ack, relay_running = await open_relay(sid, user_id, agent_id, request)
            return ack
        finally:
            if not relay_running:  # else run_relay releases it when the conversation ends
                release_conversation(user_id)

    async def open_relay(
        sid: str, user_id: str, agent_id: str, request: app_events.ConversationStart
    ) -> tuple[dict[str, Any], bool]:
        """Open the upstream conversation, its call log and recording, and start relaying; the
        acknowledgement, and whether a relay now runs (and owns the user's conversation slot)."""
        rt = get_runtime()
        settings = rt.settings
        try:
            upstream = await rt.elevenlabs.open_conversation(
                agent_id, request.initiation(user_id), inactivity_timeout=settings.inactivity_timeout
            )
        except ProviderError as exc:
            await fail(sid, exc, fatal=True)
            await emit(
                sid,
                S.CONVERSATION_ENDED,
                {"sessionId": None, "conversationId": None, "reason": "error", "durationMs": 0},
            )
            return app_events.failed(exc), False
        logs.conversation_id.set(upstream.conversation_id)  # run_relay, started below, inherits it
        try:
            session, call = await rt.repo.open_conversation(
                user_id,
                upstream.conversation_id,
                metadata={"agentId": agent_id, **request.metadata},
                audio_source=AudioSource.RELAY,
                provider_conversation_id=upstream.conversation_id,  # the provider's socket said it
                agent_id=agent_id,
                voice=request.voice or "default",
            )
        except BaseException:
            await upstream.close()
            raise
        recording: LiveRecording | None = None
        try:
            recording = await rt.recordings.start(call, AudioSource.RELAY, announced=True)
        except OSError as exc:  # the conversation matters more than its recording: go on, say so
            log.error("conversation %s: cannot record: %s", upstream.conversation_id, exc)
            await rt.repo.mark_recording(upstream.conversation_id, None)
            await fail(sid, StorageError("this conversation cannot be recorded (storage unavailable)"))
        relay = RelaySession(
            session_id=session.session_id,
            upstream=upstream,
            dialect=rt.dialect,
            emit=lambda event, body: emit(sid, event, body),
            app_backlog=backlog(sid),
            tap=RelayTap(recording.recorder, on_failure=lambda exc: fail(sid, exc)) if recording else None,
            input_codec=request.input_codec,
            keepalive_interval_s=settings.keepalive_interval_s,
        )
        rt.relays[sid] = relay
        metrics.CONVERSATIONS.labels("relay").inc()
        metrics.LIVE_CONVERSATIONS.labels("relay").inc()
        log.info(
            "socket %s: conversation %s started (session %s)", sid, relay.conversation_id, session.session_id
        )
        await emit(sid, S.CONVERSATION_STARTED, relay.started_payload())
        task = relay_tasks[sid] = rt.spawn(run_relay(sid, user_id, relay, recording))
        task.add_done_callback(lambda done: relay_tasks.pop(sid) if relay_tasks.get(sid) is done else None)
        return app_events.ok(**relay.started_payload()), True

    async def run_relay(sid: str, user_id: str, relay: RelaySession, recording: LiveRecording | None) -> None:
        rt = get_runtime()
        try:
            await relay.run()
        finally:
            rt.relays.pop(sid, None)
            release_conversation(user_id)
            metrics.LIVE_CONVERSATIONS.labels("relay").dec()
            audio_url = await rt.recordings.finish(recording) if recording else None
            close = functools.partial(
                rt.repo.close_conversation,
                user_id,
                relay.session_id,
                relay.conversation_id,
                duration_ms=relay.duration_ms,
                status=CallStatus.FAILED if relay.end_reason == "error" else CallStatus.ENDED,
                transcript=relay.stats.transcript,
                turns=[t.as_dict() for t in relay.stats.turns],
                end_reason=relay.end_reason,
            )
            what = f"call log {relay.conversation_id}"
            try:
                await retry_transient(close, what)
                if recording is not None and audio_url is None:
                    audio_url = await rt.recordings.relink_by_conversation(relay.conversation_id)
            except Exception as exc:
                if not transient(exc):
                    log.exception("conversation %s: could not save the call log", relay.conversation_id)
                else:  # the database is still away: tell the app, keep trying for a while
                    log.error("conversation %s: call log not saved yet (database unavailable)", what)
                    await fail(
                        sid,
                        DatabaseUnavailable(
                            "the call log could not be saved yet (database unavailable); talkgate keeps "
                            "trying for a few minutes"
                        ),
                    )
                    rt.spawn(save_later(close, what, relay.conversation_id))
            log.info("socket %s: conversation %s ended (%s)", sid, relay.conversation_id, relay.end_reason)
            ended: dict[str, Any] = {
                "sessionId": relay.session_id,
                "conversationId": relay.conversation_id,
                "reason": relay.end_reason,
                "durationMs": relay.duration_ms,
                "audioUrl": audio_url,
            }
            await emit(sid, S.CONVERSATION_ENDED, ended)

    async def save_later(close: Callable[[], Awaitable[None]], what: str, conversation_id: str) -> None:
        rt = get_runtime()
        try:
            await retry_transient(close, what, LATER_DELAYS)
            await rt.recordings.relink_by_conversation(conversation_id)
            log.warning("%s saved after the database came back", what)
        except Exception:
            log.exception("%s: given up; the call log stays incomplete", what)

    async def user_audio_start(sid: str, _: Any) -> dict[str, Any]:
        return app_events.ok(turn=await relay_of(sid).start_turn())

    async def send_audio(sid: str, payload: Any) -> dict[str, Any]:
        began = time.perf_counter()
        relay = relay_of(sid)
        data, b64 = app_events.parse_send_audio(payload, get_runtime().settings.max_chunk_bytes)
        await relay.audio(data, b64)
        chunk_seconds.observe(time.perf_counter() - began)
        return app_events.ok()

    async def user_audio_end(sid: str, _: Any) -> dict[str, Any]:
        ended = await relay_of(sid).end_turn()
        return app_events.ok(turn=ended.turn, chunks=ended.chunks, bytes=ended.nbytes)

    async def user_activity_signal(sid: str, _: Any) -> dict[str, Any]:
        await relay_of(sid).keepalive()
        return app_events.ok()

    async def conversation_message(sid: str, payload: Any) -> dict[str, Any]:
        relay = relay_of(sid)
        await relay.message(app_events.parse_conversation_message(payload))
        return app_events.ok()

    async def conversation_end(sid: str, _: Any) -> dict[str, Any]:
        relay = relay_of(sid)
        await relay.stop("client")
        await relay.ended.wait()
        return app_events.ok(sessionId=relay.session_id, conversationId=relay.conversation_id)

    async def reauthenticate(sid: str, payload: Any) -> dict[str, Any]:
        token = payload.get("token") if isinstance(payload, dict) else None
        if not isinstance(token, str):
            raise ProtocolError("reauthenticate needs {token}")
        principal = await get_runtime().authenticate(token)
        if principal.user_id != user_of.get(sid):
            raise AuthError("the token is for another user than this socket's", code=ErrorCode.WRONG_USER)
        return app_events.ok(expiresAt=int(watch_token(sid, principal)))

    @sio.on("*")
    async def unknown_event(event: str, sid: str, *_: Any) -> dict[str, Any]:
        return await fail(sid, ProtocolError(f"unknown event {event[:64]!r}"))

    handlers: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {}
    for name, fn in {
        C.CONVERSATION_START: conversation_start,
        C.USER_AUDIO_START: user_audio_start,
        C.SEND_AUDIO: send_audio,
        C.USER_AUDIO_END: user_audio_end,
        C.USER_ACTIVITY_SIGNAL: user_activity_signal,
        C.CONVERSATION_MESSAGE: conversation_message,
        C.CONVERSATION_END: conversation_end,
        REAUTHENTICATE: reauthenticate,
    }.items():
        fn.__name__ = name.replace("-", "_")
        handlers[name] = handler(fn)
        sio.on(name, handlers[name])

    # --- fast paths (talkgate/fastpaths): each falls back to the library's path ---
    fast = fastpaths.install_relay(sio, settings, on_audio=handlers[C.SEND_AUDIO.value], noise=noise)
    return sio
