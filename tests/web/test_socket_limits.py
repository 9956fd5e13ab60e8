"""Per-user limits on sockets and conversations, and a socket's token lifetime, over real Socket.IO
connections: what is refused and with which code, that counts go down when sockets and
conversations end (their error paths too), and that a socket whose token expires ends its
conversation cleanly and is disconnected unless it reauthenticates."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any

import httpx
import pytest
import socketio

from talkgate.auth import LEEWAY_S
from tests.support.gate import AppClient, connect, gated, start_gate
from tests.support.timing import TIMEOUT, wait_until


async def refused_connect(gate: Any, user: str) -> dict[str, Any]:
    client = socketio.AsyncClient(reconnection=False)
    refused: list[Any] = []
    client.on("connect_error", lambda data: refused.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            gate.url, auth={"token": gate.token(user)}, transports=["websocket"], wait_timeout=TIMEOUT
        )
    return refused[0]  # type: ignore[no-any-return]


async def test_sockets_beyond_the_per_user_limit_are_refused_at_connect(tmp_path, simulator):
    async with gated(tmp_path, simulator, max_sockets_per_user=3) as (gate, first):
        more = [await connect(gate) for _ in range(2)]
        refused = await refused_connect(gate, "alice")
        assert refused["data"] == {"code": "too_many_sockets"}, refused
        assert "TALKGATE_MAX_SOCKETS_PER_USER" in refused["message"]
        other = await connect(gate, "bob")  # another user is not affected
        assert (await other.call("user_activity_signal"))["error"]["code"] == "no_conversation"
        await more[0].sio.disconnect()  # a slot comes back when a socket goes
        await wait_until(lambda: len(gate.app.sio.sockets_of["alice"]) == 2)
        again = await connect(gate)
        for client in (*more[1:], other, again):
            await client.sio.disconnect()
        # every other socket gone: nothing held for them
        await wait_until(lambda: gate.app.sio.sockets_of == {"alice": {first.sio.get_sid()}})
        assert set(gate.app.sio.user_of) == {first.sio.get_sid()}


async def test_conversations_beyond_the_per_user_limit_fail_and_free_up_when_they_end(tmp_path, simulator):
    async with gated(tmp_path, simulator, max_conversations_per_user=2) as (gate, a):
        b, c = await connect(gate), await connect(gate)
        assert (await a.call("conversation_start", {}))["ok"]
        assert (await b.call("conversation_start", {}))["ok"]
        ack = await c.call("conversation_start", {})
        assert ack["ok"] is False and ack["error"]["code"] == "too_many_conversations", ack
        assert "TALKGATE_MAX_CONVERSATIONS_PER_USER" in ack["error"]["message"]
        (error,) = await c.wait_for("conversation_error")
        assert error["code"] == "too_many_conversations" and error["fatal"] is False
        bob = await connect(gate, "bob")
        assert (await bob.call("conversation_start", {}))["ok"]  # per user

        assert (await a.call("conversation_end"))["ok"]  # ended by the app
        await wait_until(lambda: gate.app.sio.conversations_of.get("alice") == 1)
        assert (await c.call("conversation_start", {}))["ok"]
        await b.sio.disconnect()  # ended by a dropped socket
        await wait_until(lambda: gate.app.sio.conversations_of.get("alice") == 1)
        assert (await a.call("conversation_start", {}))["ok"]
        for client in (c, bob):
            await client.sio.disconnect()
        await a.call("conversation_end")
    await wait_until(lambda: not gate.app.sio.conversations_of)


async def test_a_conversation_that_fails_to_start_gives_its_slot_back(tmp_path):
    gate = start_gate(tmp_path, None, max_conversations_per_user=1)  # no provider: every start fails
    try:
        app = await connect(gate)
        for _ in range(3):
            ack = await app.call("conversation_start", {})
            assert ack["error"]["code"] == "provider_unreachable", ack
        assert not gate.app.sio.conversations_of
        await app.sio.disconnect()
    finally:
        gate.server.stop()


def short_token(gate: Any, user: str = "alice", left_s: float = 1.0) -> str:
    """A token whose deadline (exp plus the verifier's leeway) is about ``left_s`` from now."""
    return gate.token(user, ttl_s=int(left_s) - LEEWAY_S)


async def test_a_socket_whose_token_expires_ends_its_conversation_cleanly_and_is_disconnected(gate):
    app = await connect(gate, token=short_token(gate, left_s=3))
    witness = await connect(gate, "witness")
    disconnected = asyncio.Event()
    app.sio.on("disconnect", lambda *_: disconnected.set())
    started = await app.call("conversation_start", {})
    assert started["ok"], started
    # A little audio, so that the call has a recording to save (a call with none records nothing).
    assert (await app.call("user-audio-start"))["ok"]
    assert (await app.call("send_audio", {"audio": base64.b64encode(b"\x01\x02" * 1600).decode()}))["ok"]
    assert (await app.call("user-audio-end"))["ok"]
    (error,) = await app.wait_for("conversation_error")
    assert error["code"] == "token_expired" and error["fatal"] is True, error
    (ended,) = await app.wait_for("conversation_ended")
    assert ended["reason"] == "token_expired" and ended["conversationId"] == started["conversationId"]
    async with asyncio.timeout(TIMEOUT):
        await disconnected.wait()
    order = [e for e, _ in app.events if e in ("conversation_error", "conversation_ended")]
    assert order == ["conversation_error", "conversation_ended"]
    async with httpx.AsyncClient(base_url=gate.url, timeout=TIMEOUT) as http:
        call = (await http.get(f"/api/calls/{started['conversationId']}", headers=gate.headers())).json()
    assert call["status"] == "ended" and call["endReason"] == "token_expired", call
    assert call["audioUrl"]  # its recording saved, as for any end
    await wait_until(
        lambda: not gate.app.runtime.relays and set(gate.app.sio.deadlines) == {witness.sio.get_sid()}
    )
    assert (await witness.call("user_activity_signal"))["error"]["code"] == "no_conversation"  # still there
    await witness.sio.disconnect()


async def test_a_long_polling_socket_whose_token_expires_is_told_and_disconnected(gate, caplog):
    app = await connect(gate, token=short_token(gate, left_s=2), transports=("polling",))
    eio_sid = app.sio.eio.sid
    reasons: list[Any] = []
    disconnected = asyncio.Event()
    app.sio.on("disconnect", lambda *why: (reasons.append(why), disconnected.set()))
    (error,) = await app.wait_for("conversation_error")
    assert error["code"] == "token_expired" and error["fatal"] is True, error
    async with asyncio.timeout(TIMEOUT):  # before: the client still thought itself connected
        await disconnected.wait()
    assert reasons == [(app.sio.reason.SERVER_DISCONNECT,)], reasons  # Socket.IO's DISCONNECT
    sockets = gate.app.sio.eio.sockets
    await wait_until(lambda: eio_sid not in sockets or sockets[eio_sid].closed)
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]  # no 500, no traceback


async def test_reauthenticate_moves_the_deadline_for_the_same_user_only(gate):
    app = await connect(gate, token=short_token(gate, left_s=3))
    sio = gate.app.sio
    sid = app.sio.get_sid()
    wrong = await app.call("reauthenticate", {"token": gate.token("mallory")})
    assert wrong["ok"] is False and wrong["error"]["code"] == "wrong_user", wrong
    bad = await app.call("reauthenticate", {"token": "garbage"})
    assert bad["error"]["code"] == "token_malformed", bad
    assert (await app.call("reauthenticate", {}))["error"]["code"] == "bad_request"
    old_exp, old_timer = sio.deadlines[sid]
    assert not old_timer.cancelled()  # the refusals left the deadline alone
    ok = await app.call("reauthenticate", {"token": gate.token("alice", ttl_s=3600)})
    assert ok["ok"] is True and ok["expiresAt"] == int(sio.deadlines[sid][0]) > time.time() + 3000
    assert old_timer.cancelled() and sio.deadlines[sid][1] is not old_timer  # one timer per socket
    assert ok["expiresAt"] > old_exp
    started = await app.call("conversation_start", {})
    assert started["ok"]
    assert [e["code"] for e in app.of("conversation_error")] == [
        "wrong_user",
        "token_malformed",
        "bad_request",
    ]
    assert (await app.call("conversation_end"))["ok"]
    await app.sio.disconnect()
    await wait_until(lambda: sid not in sio.deadlines)


async def test_a_refused_reauthentication_keeps_the_old_deadline(gate):
    app: AppClient = await connect(gate, token=short_token(gate, left_s=1))
    assert (await app.call("reauthenticate", {"token": gate.token("bob")}))["error"]["code"] == "wrong_user"
    (error,) = await app.wait_for("conversation_error", pred=lambda p: p["code"] == "token_expired")
    assert error["fatal"] is True
    await wait_until(lambda: not app.sio.connected)
