"""The Socket.IO adapter of the push-to-talk relay: the server's bounds and the handlers, which parse,
call into ``talkgate.calls.relay`` and acknowledge.

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
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import engineio
import socketio

from talkgate import fastpaths, logs, metrics
from talkgate.auth import LEEWAY_S, Principal
from talkgate.calls.relay import ConversationSlots, RelayCalls
from talkgate.calls.runtime import Runtime
from talkgate.errors import AuthError, ErrorCode, ProtocolError, TalkgateError
from talkgate.fastpaths import backlog
from talkgate.fastpaths import engine_loop as engine
from talkgate.fastpaths.backlog import Backlog, BacklogOf
from talkgate.protocol import app_events
from talkgate.protocol.app_events import ClientEventName as C
from talkgate.protocol.app_events import ServerEventName as S
from talkgate.protocol.ends import EndReason
from talkgate.settings import Settings

log = logging.getLogger("talkgate.sio")

REAUTHENTICATE = C.REAUTHENTICATE

Handler = Callable[[str, Any], Awaitable[dict[str, Any]]]  # (sid, payload) → acknowledgement

BINARY_PACKET_TYPES = ("5", "6")  # Socket.IO BINARY_EVENT, BINARY_ACK: attachments follow


def event_ack_id(text: str) -> int | None:
    """The acknowledgement id of a Socket.IO EVENT packet to the default namespace (``212["event",...]``),
    read from its header without decoding its JSON; None where it asks for none (or is not such a packet)."""
    if text[:1] != "2":
        return None
    start = 3 if text.startswith("2/,") else 1
    end = start
    while end < len(text) and end - start < 16 and "0" <= text[end] <= "9":
        end += 1
    return int(text[start:end]) if end > start else None


def declared_attachments(text: str) -> int:
    """How many attachments a binary packet's header (``51-["event",...]``) declares, read as
    python-socketio reads it; 0 where it declares none it can parse (never valid for a binary packet),
    and a huge number where the count is too long to be one."""
    dash = text.find("-", 1)
    digits = text[1:dash] if dash > 1 else ""
    if not (digits.isascii() and digits.isdigit()):
        return 0
    return int(digits) if len(digits) <= 10 else 10**11


class RelayServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, with talkgate's bounds on what one socket may send before a handler
    runs, on the websocket loop and on long-polling alike (both deliver to ``_handle_eio_message``):

    - an Engine.IO session must complete its authenticated Socket.IO connect within
      ``connect_timeout_s`` (and may not stay without one for longer), else it is closed; until then
      it may send no binary message at all (talkgate's connect takes none): the socket is closed;
    - a binary packet may declare 1 to ``max_attachments`` attachments, and the packet with its
      attachments may hold at most ``max_http_buffer_size`` bytes; beyond, the partial packet is
      dropped, the socket gets a fatal ``conversation_error`` and is closed;
    - a message python-socketio cannot decode is dropped with one short log line, rate-limited per
      peer address (the library would log it with a traceback); an event among them is answered
      with ``conversation_error`` ``bad_request`` (and its acknowledgement, where its id can be read);
    - a socket with more than ``max_backlog`` packets waiting to be sent (a peer that sends but does
      not read) is closed (``slow_consumer``) at its next message.

    It relies on python-socketio routing Engine.IO messages to ``_handle_eio_message`` and keeping
    partial packets in ``_binary_packet``; ``library_fits`` checks both, and where they differ the
    server logs so and runs with the library's own behaviour.
    """

    def __init__(
        self,
        *,
        max_attachments: int,
        noise: logs.PeerNoise,
        max_backlog: int = 1000,
        connect_timeout_s: float = 10.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self.max_attachments = max_attachments
        self.connect_timeout_s = connect_timeout_s
        # Engine.IO sid → the timer that closes it unless it has a connected Socket.IO socket by then.
        self.connect_deadlines: dict[str, asyncio.TimerHandle] = {}
        self.max_backlog = max_backlog
        self.max_packet_bytes: int = options["max_http_buffer_size"]
        self.noise = noise
        # Engine.IO sid → [attachments still to come, bytes so far] of a binary packet being received.
        self.partial: dict[str, list[int]] = {}
        self.closing: set[str] = set()  # long-polling sockets closed once they collect what is queued
        self.closers: set[asyncio.Task[None]] = set()
        # Per process (with N workers, a user may hold up to N times as many); kept by RelayNamespace.
        self.user_of: dict[str, str] = {}  # sid → user, for every connected socket
        self.sockets_of: dict[str, set[str]] = {}  # user → sids
        self.conversations_of: dict[str, int] = {}  # user → live (or starting) conversations
        self.deadlines: dict[str, tuple[float, asyncio.TimerHandle]] = {}  # sid → (token exp, its timer)
        # A frame over the limit, seen by the Engine.IO websocket loop before it ends the connection.
        self.eio._talkgate_oversized = self.oversized_message
        self.bounded = self.library_fits()
        if not self.bounded:
            log.warning(
                "this python-socketio does not route messages as expected: binary packets are not bounded "
                "by TALKGATE_MAX_ATTACHMENTS, only by the library"
            )

    def library_fits(self) -> bool:
        return (
            self.eio.handlers.get("message") == self._handle_eio_message
            and self.eio.handlers.get("connect") == self._handle_eio_connect
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

    def connected(self, eio_sid: str) -> bool:
        """Whether the Engine.IO session has a (so authenticated) Socket.IO socket on the namespace."""
        return self.manager.sid_from_eio_sid(eio_sid, "/") is not None

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        result = await super()._handle_eio_connect(eio_sid, environ)
        self.arm_connect_deadline(eio_sid)
        return result

    def arm_connect_deadline(self, eio_sid: str) -> None:
        """In ``connect_timeout_s``, close the Engine.IO session unless it has a Socket.IO socket then."""
        if (old := self.connect_deadlines.pop(eio_sid, None)) is not None:
            old.cancel()

        def check() -> None:
            self.connect_deadlines.pop(eio_sid, None)
            if not self.connected(eio_sid):
                self.spawn_closer(self.connect_overdue(eio_sid))

        self.connect_deadlines[eio_sid] = asyncio.get_running_loop().call_later(self.connect_timeout_s, check)

    async def connect_overdue(self, eio_sid: str) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closed or self.connected(eio_sid):
            return
        self.noise.line(
            log,
            self.peer(eio_sid),
            "socket %s: closed: no Socket.IO connect within %g s (TALKGATE_CONNECT_TIMEOUT)",
            eio_sid,
            self.connect_timeout_s,
        )
        await self.close_engine_socket(eio_sid)

    def spawn_closer(self, closing: Awaitable[None]) -> None:
        task = asyncio.ensure_future(closing)
        self.closers.add(task)
        task.add_done_callback(self.closers.discard)

    async def _handle_disconnect(self, eio_sid: str, namespace: str | None, reason: Any = None) -> None:
        self.partial.pop(eio_sid, None)  # (the library drops its own partial packet)
        await super()._handle_disconnect(eio_sid, namespace, reason)
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None and not (socket.closing or socket.closed):
            self.arm_connect_deadline(eio_sid)  # left the namespace: the session may not idle on

    def binary_refusal(self, eio_sid: str, data: str | bytes) -> TalkgateError | None:
        """Why a binary message or binary packet's header, which no partial packet awaits, closes its
        socket; None where it may go on to python-socketio."""
        if not self.connected(eio_sid):
            return ProtocolError("no binary message is allowed before the Socket.IO connect")
        if type(data) is not str:
            return None  # python-socketio drops it (bad input)
        if not 1 <= declared_attachments(data) <= self.max_attachments:
            return ProtocolError(
                f"a message may carry 1 to {self.max_attachments} binary attachments "
                "(TALKGATE_MAX_ATTACHMENTS)",
                code=ErrorCode.TOO_MANY_ATTACHMENTS,
            )
        return None

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
        elif type(data) is not str or data[:1] in BINARY_PACKET_TYPES:
            if (refusal := self.binary_refusal(eio_sid, data)) is not None:
                return await self.refuse(eio_sid, refusal)
            started = declared_attachments(data) if type(data) is str else 0
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
            if type(data) is str and partial is None:
                await self.answer_undecodable(eio_sid, data)
            return
        if started:
            self.partial[eio_sid] = [started, len(data)]

    async def answer_undecodable(self, eio_sid: str, text: str) -> None:
        """An event python-socketio could not decode: the app is told (``bad_request``), and acknowledged
        where the packet's id can be read; its socket carries on."""
        sid = self.manager.sid_from_eio_sid(eio_sid, "/")
        if sid is None or text[:1] != "2":
            return
        error = ProtocolError("this event could not be decoded (malformed or too deeply nested JSON)")
        metrics.ERRORS.labels(error.code.value).inc()
        payload = app_events.error_payload(error, fatal=False)
        await self.emit(S.CONVERSATION_ERROR, payload, to=sid, ignore_queue=True)
        if (ack_id := event_ack_id(text)) is not None:
            ack = self.packet_class(
                socketio.packet.ACK, namespace="/", id=ack_id, data=[app_events.failed(error)]
            )
            await self._send_packet(eio_sid, ack)

    async def oversized_message(self, eio_sid: str, size: int) -> None:
        error = ProtocolError(
            f"a message of {size} bytes is over the limit of {self.max_packet_bytes} bytes "
            "(TALKGATE_MAX_MESSAGE_BYTES)",
            code=ErrorCode.MESSAGE_TOO_LARGE,
        )
        await self.refuse(eio_sid, error)

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
            # python-engineio's own websocket writer (fast paths off) ends only at this, not at CLOSE:
            # without it the websocket stayed open until the peer's next frame or the ping timeout.
            socket.queue.put_nowait(None)
            return
        self.closing.add(eio_sid)
        # Engine.IO's CLOSE, collected last: the peer learns that the session ended, and polls no more.
        await socket.send(engineio.packet.Packet(engineio.packet.CLOSE))

        async def close_once_collected() -> None:
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(socket.queue.join(), self.eio.ping_timeout)
                await socket.close(wait=False, abort=True, reason=self.eio.reason.SERVER_DISCONNECT)
            finally:
                self.closing.discard(eio_sid)

        self.spawn_closer(close_once_collected())

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        peer = self.peer(eio_sid)
        self.partial.pop(eio_sid, None)
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            # (after the namespaces' disconnects, which may have re-armed it)
            if (deadline := self.connect_deadlines.pop(eio_sid, None)) is not None:
                deadline.cancel()
            self.noise.report(log, peer)


def client_manager(settings: Settings) -> socketio.AsyncManager:
    """In-process by default; with Redis, events to rooms reach sockets held by other processes."""
    if settings.redis_url is None:
        return socketio.AsyncManager()
    return socketio.AsyncRedisManager(settings.redis_url, channel=settings.redis_channel)


@dataclass
class SocketLink:
    """One socket as the relay sees it (``talkgate.calls.relay.RelayLink``)."""

    sio: RelayServer
    sid: str
    read_backlog: Backlog  # the socket's outgoing queue length (talkgate.fastpaths.backlog)

    async def emit(self, event: str, payload: dict[str, Any]) -> None:
        if event == S.CONVERSATION_ERROR:
            metrics.ERRORS.labels(payload.get("code", "error")).inc()
        # A relay's socket is always on this process: never publish its traffic to Redis.
        await self.sio.emit(event, payload, to=self.sid, ignore_queue=True)

    async def fail(self, exc: TalkgateError, *, fatal: bool = False) -> dict[str, Any]:
        await self.emit(S.CONVERSATION_ERROR, app_events.error_payload(exc, fatal=fatal))
        return app_events.failed(exc)

    def backlog(self) -> int:
        return self.read_backlog()


def refused(exc: TalkgateError) -> socketio.exceptions.ConnectionRefusedError:
    # The client's connect_error receives {message, data: {code}} (socket.io-client: err.data).
    return socketio.exceptions.ConnectionRefusedError(exc.message, {"code": exc.code.value})


def bearer_token(environ: dict[str, Any], auth: Any) -> Any:
    """The token from the connect packet's auth, else the Authorization header; checked by the verifier."""
    token = auth.get("token") if isinstance(auth, dict) else None
    if token is None:
        header = environ.get("HTTP_AUTHORIZATION", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
    return token


class RelayNamespace(socketio.AsyncNamespace):  # type: ignore[misc]
    """The default namespace: sockets, their users and tokens, and the relay's client events.
    Every client event goes through ``guarded``: a failure is acknowledged and emitted."""

    def __init__(self, sio: RelayServer, get_runtime: Callable[[], Runtime], settings: Settings) -> None:
        super().__init__("/")
        self.sio = sio
        self.get_runtime = get_runtime
        self.settings = settings
        self.backlog_of: BacklogOf = backlog.empty  # the fast path's reader, once installed
        self.calls = RelayCalls(
            get_runtime, ConversationSlots(sio.conversations_of, lambda: settings.max_conversations_per_user)
        )
        self.events: dict[str, Handler] = {
            C.CONVERSATION_START: self.conversation_start,
            C.USER_AUDIO_START: self.user_audio_start,
            C.SEND_AUDIO: self.send_audio,
            C.USER_AUDIO_END: self.user_audio_end,
            C.USER_ACTIVITY_SIGNAL: self.user_activity_signal,
            C.CONVERSATION_MESSAGE: self.conversation_message,
            C.CONVERSATION_END: self.conversation_end,
            REAUTHENTICATE: self.reauthenticate,
        }

    def link(self, sid: str) -> SocketLink:
        return SocketLink(self.sio, sid, self.backlog_of(sid))

    async def trigger_event(self, event: str, *args: Any) -> Any:
        if event in ("connect", "disconnect"):
            return await super().trigger_event(event, *args)
        sid, payload = args[0], (args[1] if len(args) > 1 else None)
        handler = self.events.get(event)
        if handler is None:
            return await self.link(sid).fail(ProtocolError(f"unknown event {event[:64]!r}"))
        return await self.guarded(handler, sid, payload)

    async def guarded(self, handler: Handler, sid: str, payload: Any) -> dict[str, Any]:
        # Handlers of one socket run in one task: say which conversation this event is for.
        logs.conversation_id.set(self.calls.conversation_of(sid))
        try:
            return await handler(sid, payload)
        except TalkgateError as exc:
            return await self.link(sid).fail(exc)
        except Exception:
            # talkgate's bug, with its traceback; but what one peer can set off, it may not repeat
            # into the log without end.
            if self.sio.noise.allow(self.sio.peer(self.sio.manager.eio_sid_from_sid(sid, "/") or sid)):
                log.exception("socket %s: handler %s failed", sid, handler.__name__)
            return await self.link(sid).fail(TalkgateError("internal error"))

    # --- sockets, users, tokens -------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            principal = await self.get_runtime().authenticate(bearer_token(environ, auth))
        except AuthError as exc:
            raise refused(exc) from None
        user_id = principal.user_id
        held = len(self.sio.sockets_of.get(user_id, ()))
        if held >= self.settings.max_sockets_per_user:
            metrics.ERRORS.labels(ErrorCode.TOO_MANY_SOCKETS.value).inc()
            raise refused(
                ProtocolError(
                    f"this user already holds {held} sockets, the limit "
                    "(TALKGATE_MAX_SOCKETS_PER_USER); close one first",
                    code=ErrorCode.TOO_MANY_SOCKETS,
                )
            )
        self.sio.sockets_of.setdefault(user_id, set()).add(sid)
        self.sio.user_of[sid] = user_id
        try:
            await self.sio.save_session(sid, {"user_id": user_id})
            await self.sio.enter_room(sid, app_events.user_room(user_id))
            self.watch_token(sid, principal)
        except BaseException:
            self.forget_socket(sid)
            raise
        log.info("socket %s connected for user %s", sid, user_id)

    def forget_socket(self, sid: str) -> None:
        if (deadline := self.sio.deadlines.pop(sid, None)) is not None:
            deadline[1].cancel()
        user_id = self.sio.user_of.pop(sid, None)
        if user_id is not None and (held := self.sio.sockets_of.get(user_id)) is not None:
            held.discard(sid)
            if not held:
                del self.sio.sockets_of[user_id]

    async def on_disconnect(self, sid: str, *_: Any) -> None:
        self.forget_socket(sid)
        await self.calls.stop(sid, EndReason.DISCONNECTED)

    def watch_token(self, sid: str, principal: Principal) -> float:
        """(Re)arm the socket's one timer: at the token's exp (plus the verifier's leeway) it ends."""
        exp = float(principal.claims["exp"])
        if (old := self.sio.deadlines.pop(sid, None)) is not None:
            old[1].cancel()
        delay = max(0.0, exp + LEEWAY_S - time.time())
        expire = lambda: self.get_runtime().spawn(self.token_expired(sid, exp))  # noqa: E731
        self.sio.deadlines[sid] = (exp, asyncio.get_running_loop().call_later(delay, expire))
        return exp

    async def token_expired(self, sid: str, exp: float) -> None:
        current = self.sio.deadlines.get(sid)
        if current is None or current[0] != exp:
            return  # reauthenticated (a new deadline) or gone meanwhile
        del self.sio.deadlines[sid]
        expired = AuthError(
            "this socket's token has expired; send reauthenticate before exp", code=ErrorCode.TOKEN_EXPIRED
        )
        await self.link(sid).fail(expired, fatal=True)
        # Its call log saved and conversation_ended sent, as for any end.
        await self.calls.stop_and_wait(sid, EndReason.TOKEN_EXPIRED)
        log.info("socket %s: token expired, disconnected", sid)
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is not None:
            # Socket.IO's DISCONNECT, then Engine.IO's CLOSE: on long-polling as on websocket, the app's
            # client learns it was disconnected by the server (and does not poll a closed session).
            await self.sio.disconnect(sid, ignore_queue=True)
            await self.sio.close_engine_socket(eio_sid)

    async def reauthenticate(self, sid: str, payload: Any) -> dict[str, Any]:
        token = payload.get("token") if isinstance(payload, dict) else None
        if not isinstance(token, str):
            raise ProtocolError("reauthenticate needs {token}")
        principal = await self.get_runtime().authenticate(token)
        if principal.user_id != self.sio.user_of.get(sid):
            raise AuthError("the token is for another user than this socket's", code=ErrorCode.WRONG_USER)
        return app_events.ok(expiresAt=int(self.watch_token(sid, principal)))

    # --- the relay's client events ----------------------------------------------------------

    async def conversation_start(self, sid: str, payload: Any) -> dict[str, Any]:
        return await self.calls.start(sid, self.sio.user_of[sid], payload, self.link(sid))

    async def user_audio_start(self, sid: str, _: Any) -> dict[str, Any]:
        return app_events.ok(turn=await self.calls.relay_of(sid).start_turn())

    async def send_audio(self, sid: str, payload: Any) -> dict[str, Any]:
        began = time.perf_counter()
        relay = self.calls.relay_of(sid)
        data, b64 = app_events.parse_send_audio(payload, self.get_runtime().settings.max_chunk_bytes)
        await relay.audio(data, b64)
        metrics.RELAY_CHUNK_SECONDS.observe(time.perf_counter() - began)
        return app_events.ok()

    async def user_audio_end(self, sid: str, _: Any) -> dict[str, Any]:
        ended = await self.calls.relay_of(sid).end_turn()
        return app_events.ok(turn=ended.turn, chunks=ended.chunks, bytes=ended.nbytes)

    async def user_activity_signal(self, sid: str, _: Any) -> dict[str, Any]:
        await self.calls.relay_of(sid).keepalive()
        return app_events.ok()

    async def conversation_message(self, sid: str, payload: Any) -> dict[str, Any]:
        relay = self.calls.relay_of(sid)
        await relay.message(app_events.parse_conversation_message(payload))
        return app_events.ok()

    async def conversation_end(self, sid: str, _: Any) -> dict[str, Any]:
        return await self.calls.end(sid)


def create_sio(get_runtime: Callable[[], Runtime], settings: Settings) -> RelayServer:
    noise = logs.PeerNoise(settings.peer_log_lines_per_minute)
    sio = RelayServer(
        max_attachments=settings.max_attachments,
        max_backlog=settings.max_socket_backlog,
        connect_timeout_s=settings.connect_timeout_s,
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
    namespace = RelayNamespace(sio, get_runtime, settings)
    sio.register_namespace(namespace)
    install_fast_paths(sio, namespace, settings, noise)
    return sio


# --- fast paths (talkgate/fastpaths): each falls back to the library's path ---------------------


def install_fast_paths(
    sio: RelayServer, namespace: RelayNamespace, settings: Settings, noise: logs.PeerNoise
) -> None:
    def on_audio(sid: str, payload: Any) -> Awaitable[dict[str, Any]]:
        return namespace.guarded(namespace.send_audio, sid, payload)

    fast = fastpaths.install_relay(sio, settings, on_audio=on_audio, noise=noise)
    namespace.backlog_of = fast.backlog_of
