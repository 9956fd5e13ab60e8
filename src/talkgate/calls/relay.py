"""Push-to-talk relay calls: start (agent, per-user slot, provider, call log, recording), run, end
(recording finished, call log closed with retries, relink, deferred save, ``conversation_ended``).

The transport is a :class:`RelayLink` for one app connection; calls are keyed by that connection's
id (the Socket.IO sid). Handlers of one connection call in one at a time, in arrival order.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from talkgate import logs, metrics
from talkgate.calls import call_log
from talkgate.calls.recordings import LiveRecording
from talkgate.calls.runtime import Runtime
from talkgate.errors import (
    DatabaseUnavailable,
    ErrorCode,
    ProtocolError,
    ProviderError,
    StorageError,
    TalkgateError,
)
from talkgate.persistence.models import AudioSource, CallLog, CallStatus, cuid
from talkgate.persistence.repository import Opened
from talkgate.persistence.retry import retry_transient, transient
from talkgate.protocol import app_events
from talkgate.protocol.app_events import ServerEventName as S
from talkgate.protocol.ends import EndReason
from talkgate.providers.base import UpstreamConversation
from talkgate.recording.recorder import RelayTap
from talkgate.relay.session import RelaySession
from talkgate.settings import Settings

log = logging.getLogger("talkgate.sio")

START_FIELDS = ("metadata", "dynamicVariables", "overrides")
KNOWN_VOICES = ("default", "female", "male")
# talkgate's id for a relayed call (the app's ``conversationId``): chosen before the provider's
# conversation exists. The provider's own id is kept apart (``provider_conversation_id``).
RELAY_PREFIX = "relay_"


class RelayLink(Protocol):
    """One app connection, as the relay sees it."""

    async def emit(self, event: str, payload: dict[str, Any]) -> None: ...

    async def fail(self, exc: TalkgateError, *, fatal: bool = False) -> dict[str, Any]: ...

    def backlog(self) -> int: ...


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


def choose_agent(settings: Settings, request: app_events.ConversationStart) -> str:
    """The voice's agent, or the agent the app named if it is one of this server's."""
    if request.agent_id is None:
        return settings.agent_id_for(request.voice)
    if request.agent_id not in {settings.agent_id_for(v) for v in KNOWN_VOICES}:
        raise ProtocolError("agentId is not one of this server's agents", code=ErrorCode.UNKNOWN_AGENT)
    return request.agent_id


def ended_payload(relay: RelaySession, audio_url: str | None) -> dict[str, Any]:
    return {
        "sessionId": relay.session_id,
        "conversationId": relay.conversation_id,
        "reason": relay.end_reason,
        "durationMs": relay.duration_ms,
        "audioUrl": audio_url,
    }


FAILED_START = {"sessionId": None, "conversationId": None, "reason": EndReason.ERROR, "durationMs": 0}


class ConversationSlots:
    """Live (or starting) conversations per user, bounded per process."""

    def __init__(self, held: dict[str, int], limit: Callable[[], int]) -> None:
        self.held = held
        self._limit = limit

    def take(self, user_id: str) -> None:
        held, limit = self.held.get(user_id, 0), self._limit()
        if held >= limit:
            raise ProtocolError(
                f"this user already holds {held} live conversations, the limit "
                "(TALKGATE_MAX_CONVERSATIONS_PER_USER); end one first",
                code=ErrorCode.TOO_MANY_CONVERSATIONS,
            )
        self.held[user_id] = held + 1

    def release(self, user_id: str) -> None:
        left = self.held.get(user_id, 0) - 1
        if left > 0:
            self.held[user_id] = left
        else:
            self.held.pop(user_id, None)


@dataclass
class RunningCall:
    key: str
    user_id: str
    relay: RelaySession
    recording: LiveRecording | None
    link: RelayLink
    provider_id: asyncio.Task[None] | None = None  # the provider's id being written (``_open``)


class RelayCalls:
    """Every relay call of this process."""

    def __init__(self, get_runtime: Callable[[], Runtime], slots: ConversationSlots) -> None:
        self.get_runtime = get_runtime
        self.slots = slots
        self.tasks: dict[str, asyncio.Task[None]] = {}  # key → the run of its conversation

    def relay_of(self, key: str) -> RelaySession:
        relay = self.get_runtime().relays.get(key)
        if relay is None:
            raise ProtocolError(
                "no conversation is running; send conversation_start first", code=ErrorCode.NO_CONVERSATION
            )
        return relay

    def conversation_of(self, key: str) -> str | None:
        relay = self.get_runtime().relays.get(key)
        return relay.conversation_id if relay is not None else None

    # --- start ------------------------------------------------------------------------------

    async def start(self, key: str, user_id: str, payload: Any, link: RelayLink) -> dict[str, Any]:
        """``conversation_start``: the acknowledgement (ok, or why not)."""
        rt = self.get_runtime()
        if key in rt.relays:
            raise ProtocolError(
                "a conversation is already running on this socket", code=ErrorCode.CONVERSATION_ACTIVE
            )
        settings = rt.settings
        check_start_fields(payload, settings.max_start_field_bytes, settings.max_start_field_depth)
        request = app_events.ConversationStart.parse(payload)
        agent_id = choose_agent(settings, request)
        self.slots.take(user_id)
        running = False
        try:
            await self._refuse_over_rate(user_id)
            ack, running = await self._open(key, user_id, agent_id, request, link)
            return ack
        finally:
            if not running:  # else _run releases it when the conversation ends
                self.slots.release(user_id)

    async def _refuse_over_rate(self, user_id: str) -> None:
        """``too_many_calls`` before the provider is asked for anything. A database that is away
        does not refuse the start here: the call log's own write waits for it, or says so."""
        rt = self.get_runtime()
        try:
            await rt.repo.refuse_over_rate(user_id, rt.call_rate())
        except Exception as exc:
            if not transient(exc):
                raise
            log.warning("user %s: the rate of call starts was not checked (database unavailable)", user_id)

    async def _open(
        self, key: str, user_id: str, agent_id: str, request: app_events.ConversationStart, link: RelayLink
    ) -> tuple[dict[str, Any], bool]:
        """Open the upstream conversation, its call log and recording, and start relaying; the
        acknowledgement, and whether a relay now runs (and owns the user's conversation slot).

        The call log is keyed by talkgate's own id, so it is written while the provider's
        socket opens, not after it: the provider's id, which only that socket's metadata gives,
        is filled in once it is known (``_own_provider_id``)."""
        rt = self.get_runtime()
        conversation_id = RELAY_PREFIX + cuid()
        logs.conversation_id.set(conversation_id)  # the run, started below, inherits it
        rows = asyncio.ensure_future(self._open_rows(user_id, conversation_id, agent_id, request))
        try:
            upstream = await rt.elevenlabs.open_conversation(
                agent_id, request.initiation(user_id), inactivity_timeout=rt.dialect.inactivity_timeout
            )
        except ProviderError as exc:
            await self._discard_rows(user_id, rows)
            await link.fail(exc, fatal=True)
            await link.emit(S.CONVERSATION_ENDED, dict(FAILED_START))
            return app_events.failed(exc), False
        except BaseException:  # cancelled, or a bug: the rows being written go too
            rt.spawn(self._discard_rows(user_id, rows))
            raise
        try:
            session, call = await rows
        except BaseException as exc:
            await upstream.close()
            if isinstance(exc, Exception) and transient(exc):
                raise DatabaseUnavailable(
                    "the conversation could not be started: the database is unavailable; try again shortly"
                ) from None
            raise
        provider_id = rt.spawn(self._own_provider_id(conversation_id, upstream.conversation_id))
        recording = await self._start_recording(call, link)
        relay = self._relay(session.session_id, conversation_id, upstream, request, recording, link)
        running = RunningCall(key, user_id, relay, recording, link, provider_id)
        rt.relays[key] = relay
        metrics.CONVERSATIONS.labels("relay").inc()
        metrics.LIVE_CONVERSATIONS.labels("relay").inc()
        log.info(
            "socket %s: conversation %s started (session %s, provider conversation %s)",
            key,
            conversation_id,
            session.session_id,
            upstream.conversation_id,
        )
        await link.emit(S.CONVERSATION_STARTED, relay.started_payload())
        task = self.tasks[key] = rt.spawn(self._run(running))
        task.add_done_callback(lambda done: self.tasks.pop(key) if self.tasks.get(key) is done else None)
        return app_events.ok(**relay.started_payload()), True

    async def _open_rows(
        self, user_id: str, conversation_id: str, agent_id: str, request: app_events.ConversationStart
    ) -> Opened:
        """The session and call log (group-committed with other starts). A database restarting
        (seconds) is waited for; one that stays away fails the start (``_open`` says so)."""
        rt = self.get_runtime()
        open_rows = functools.partial(
            rt.repo.open_conversation,
            user_id,
            conversation_id,
            metadata={"agentId": agent_id, **request.metadata},
            audio_source=AudioSource.RELAY,
            agent_id=agent_id,
            voice=request.voice or "default",
        )
        return await retry_transient(open_rows, f"call log {conversation_id}")

    async def _discard_rows(self, user_id: str, rows: asyncio.Future[Opened]) -> None:
        """The provider did not start the conversation: the rows opened meanwhile are removed, once
        written (a start that did not happen leaves no call log)."""
        try:
            session, call = await rows
        except Exception:
            return  # not written
        try:
            await self.get_runtime().repo.discard_conversation(
                user_id, session.session_id, call.conversation_id
            )
        except Exception:
            log.warning("call log %s of a refused start not removed", call.conversation_id, exc_info=True)

    async def _own_provider_id(self, conversation_id: str, provider_conversation_id: str) -> None:
        """The provider's id on the call log, as its socket said it. The call's end writes it too
        (only if this did not), so a database away now loses nothing."""
        try:
            await self.get_runtime().repo.own_relay_conversation(conversation_id, provider_conversation_id)
        except Exception:
            log.warning(
                "conversation %s: its provider id is saved at its end", conversation_id, exc_info=True
            )

    async def _start_recording(self, call: CallLog, link: RelayLink) -> LiveRecording | None:
        rt = self.get_runtime()
        try:
            return await rt.recordings.start(call, AudioSource.RELAY, announced=True)
        except OSError as exc:  # the conversation matters more than its recording: go on, say so
            log.error("conversation %s: cannot record: %s", call.conversation_id, exc)
            await rt.repo.mark_recording(call.conversation_id, None)
            await link.fail(StorageError("this conversation cannot be recorded (storage unavailable)"))
            return None

    def _relay(
        self,
        session_id: str,
        conversation_id: str,
        upstream: UpstreamConversation,
        request: app_events.ConversationStart,
        recording: LiveRecording | None,
        link: RelayLink,
    ) -> RelaySession:
        rt = self.get_runtime()
        tap = RelayTap(recording.recorder, on_failure=lambda exc: link.fail(exc)) if recording else None
        return RelaySession(
            session_id=session_id,
            conversation_id=conversation_id,
            upstream=upstream,
            dialect=rt.dialect,
            emit=link.emit,
            app_backlog=link.backlog,
            tap=tap,
            input_codec=request.input_codec,
            keepalive_interval_s=rt.settings.keepalive_interval_s,
        )

    # --- run and end ------------------------------------------------------------------------

    async def _run(self, call: RunningCall) -> None:
        rt = self.get_runtime()
        try:
            await call.relay.run()
        finally:
            rt.relays.pop(call.key, None)
            self.slots.release(call.user_id)
            metrics.LIVE_CONVERSATIONS.labels("relay").dec()
            await self._end(call)

    async def _end(self, call: RunningCall) -> None:
        """The recording stored, the call log closed (or its save deferred), the app told."""
        rt, relay = self.get_runtime(), call.relay
        audio_url = await rt.recordings.finish(call.recording) if call.recording else None
        if call.provider_id is not None:  # its write first: it sets the column only while unset
            await asyncio.wait([call.provider_id])
        close = functools.partial(
            rt.repo.close_conversation,
            call.user_id,
            relay.session_id,
            relay.conversation_id,
            duration_ms=relay.duration_ms,
            status=CallStatus.FAILED if relay.end_reason == EndReason.ERROR else CallStatus.ENDED,
            transcript=relay.stats.transcript,
            turns=[t.as_dict() for t in relay.stats.turns],
            end_reason=relay.end_reason,
            provider_conversation_id=relay.upstream.conversation_id,  # the provider's socket said it
        )
        what = f"call log {relay.conversation_id}"
        try:
            await call_log.close_now(close, what)
            if call.recording is not None and audio_url is None:
                audio_url = await rt.recordings.relink_by_conversation(relay.conversation_id)
        except Exception as exc:
            await self._not_saved(call, exc, close, what)
        log.info("socket %s: conversation %s ended (%s)", call.key, relay.conversation_id, relay.end_reason)
        await call.link.emit(S.CONVERSATION_ENDED, ended_payload(relay, audio_url))

    async def _not_saved(self, call: RunningCall, exc: Exception, close: call_log.Close, what: str) -> None:
        rt, conversation_id = self.get_runtime(), call.relay.conversation_id
        if not call_log.still_away(exc):
            log.exception("conversation %s: could not save the call log", conversation_id)
            return
        # The database is still away: tell the app, keep trying for a while.
        log.error("conversation %s: call log not saved yet (database unavailable)", what)
        unavailable = DatabaseUnavailable(
            "the call log could not be saved yet (database unavailable); talkgate keeps "
            "trying for a few minutes"
        )
        await call.link.fail(unavailable)
        rt.spawn(call_log.save_later(close, what, conversation_id, rt.recordings))

    # --- the app's commands -----------------------------------------------------------------

    async def stop(self, key: str, reason: EndReason) -> None:
        """End the connection's conversation, if any (a dropped socket, shutdown)."""
        relay = self.get_runtime().relays.get(key)
        if relay is not None:
            await relay.stop(reason)

    async def stop_and_wait(self, key: str, reason: EndReason) -> None:
        """End it and wait until its call log is saved and ``conversation_ended`` sent."""
        if self.get_runtime().relays.get(key) is None:
            return
        await self.stop(key, reason)
        if (task := self.tasks.get(key)) is not None:
            await asyncio.wait([task])

    async def end(self, key: str) -> dict[str, Any]:
        """``conversation_end``: stop and wait for the relay's end."""
        relay = self.relay_of(key)
        await relay.stop(EndReason.CLIENT)
        await relay.ended.wait()
        return app_events.ok(sessionId=relay.session_id, conversationId=relay.conversation_id)
