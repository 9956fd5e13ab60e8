"""The Socket.IO server: the app's push-to-talk relay (seeds 000, 002, 004).

Handlers for one socket run one at a time, in arrival order (``async_handlers=False``), so a
turn's audio can never overtake its ``user-audio-end``; a slow upstream slows that socket only.
Every client event may take an acknowledgement; a failure is also emitted as
``conversation_error`` so that clients which only listen see it.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from talkgate import logs, metrics
from talkgate.errors import (
    AuthError,
    DatabaseUnavailable,
    ErrorCode,
    ProtocolError,
    ProviderError,
    StorageError,
    TalkgateError,
)
from talkgate.persistence.models import AudioSource, CallStatus
from talkgate.persistence.retry import retry_transient, transient
from talkgate.protocol import app_events
from talkgate.protocol.app_events import ClientEventName as C
from talkgate.protocol.app_events import ServerEventName as S
from talkgate.recording.recorder import RelayTap
from talkgate.relay.session import RelaySession
from talkgate.settings import Settings
from talkgate.web import engine
from talkgate.web.recordings import LiveRecording
from talkgate.web.runtime import Runtime

log = logging.getLogger("talkgate.sio")

LATER_DELAYS = (5.0,) * 60  # after the short retries: every 5 s for 5 minutes

Handler = Callable[[str, Any], Awaitable[dict[str, Any]]]


def client_manager(settings: Settings) -> socketio.AsyncManager:
    """In-process by default; with Redis, events to rooms reach sockets held by other processes."""
    if settings.redis_url is None:
        return socketio.AsyncManager()
    return socketio.AsyncRedisManager(settings.redis_url, channel=settings.redis_channel)


def create_sio(get_runtime: Callable[[], Runtime], settings: Settings) -> socketio.AsyncServer:
    sio = socketio.AsyncServer(
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
        def size() -> int:
            eio_sid = sio.manager.eio_sid_from_sid(sid, "/")
            socket = sio.eio.sockets.get(eio_sid) if eio_sid else None
            return socket.queue.qsize() if socket is not None else 0

        return size

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

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is None:
            header = environ.get("HTTP_AUTHORIZATION", "")
            token = header[7:].strip() if header[:7].lower() == "bearer " else None
        try:
            principal = await get_runtime().authenticate(token)
        except AuthError as exc:
            # The client's connect_error receives {message, data: {code}} (socket.io-client: err.data).
            raise socketio.exceptions.ConnectionRefusedError(exc.message, {"code": exc.code.value}) from None
        await sio.save_session(sid, {"user_id": principal.user_id})
        await sio.enter_room(sid, app_events.user_room(principal.user_id))
        log.info("socket %s connected for user %s", sid, principal.user_id)

    @sio.event
    async def disconnect(sid: str, *_: Any) -> None:
        relay = get_runtime().relays.get(sid)
        if relay is not None:
            await relay.stop("disconnected")

    async def conversation_start(sid: str, payload: Any) -> dict[str, Any]:
        rt = get_runtime()
        if sid in rt.relays:
            raise ProtocolError(
                "a conversation is already running on this socket", code=ErrorCode.CONVERSATION_ACTIVE
            )
        request = app_events.ConversationStart.parse(payload)
        settings = rt.settings
        agent_id = settings.agent_id_for(request.voice)
        if request.agent_id is not None:
            allowed = {settings.agent_id_for(v) for v in ("default", "female", "male")}
            if request.agent_id not in allowed:
                raise ProtocolError(
                    "agentId is not one of this server's agents", code=ErrorCode.UNKNOWN_AGENT
                )
            agent_id = request.agent_id
        user_id = (await sio.get_session(sid))["user_id"]
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
            return app_events.failed(exc)
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
        rt.spawn(run_relay(sid, user_id, relay, recording))
        return app_events.ok(**relay.started_payload())

    async def run_relay(sid: str, user_id: str, relay: RelaySession, recording: LiveRecording | None) -> None:
        rt = get_runtime()
        try:
            await relay.run()
        finally:
            rt.relays.pop(sid, None)
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
    }.items():
        fn.__name__ = name.value.replace("-", "_")
        handlers[name.value] = handler(fn)
        sio.on(name.value, handlers[name.value])

    # As socket.io-client (JSON.stringify) and python-socketio (json.dumps) write the event.
    audio_heads = ('2["send_audio",{"audio":"', '2["send_audio", {"audio": "')
    audio_tail = '"}]'
    on_audio = handlers[C.SEND_AUDIO.value]
    binary_pending: dict[str, Any] = getattr(sio, "_binary_packet", {})

    def audio_shortcut(eio_sid: str, text: str) -> Awaitable[dict[str, Any]] | None:
        """``send_audio`` in its usual form (base64, no acknowledgement), handled without
        python-socketio's JSON decoding and dispatch. Anything else (an acknowledgement id, a binary
        attachment, a JSON escape, another field) takes the general path, to the same handler."""
        head = next((h for h in audio_heads if text.startswith(h)), None)
        if head is None or not text.endswith(audio_tail) or eio_sid in binary_pending:
            return None
        audio = text[len(head) : -len(audio_tail)]
        if '"' in audio or "\\" in audio:
            return None
        sid = sio.manager.sid_from_eio_sid(eio_sid, "/")
        if sid is None or not sio.manager.is_connected(sid, "/"):
            return None
        return on_audio(sid, {"audio": audio})

    engine.install(sio.eio, audio_shortcut)
    return sio
