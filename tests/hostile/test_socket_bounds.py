"""What one socket may make the server hold or write, bounded before it costs: a binary packet's
attachments (how many, how many bytes, on websocket and long-polling), the log lines its garbage
writes, and the size and depth of conversation_start's free-form fields. Each time another app's
conversation carries on."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import socket
from typing import Any

import httpx
import pytest
import websockets
from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.uri import parse_uri

from tests.support.gate import AppClient, connect, start_gate
from tests.support.hostile import count
from tests.support.timing import TIMEOUT, wait_until

PLACEHOLDER = {"_placeholder": True, "num": 0}
ATTACHMENT = b"\0" * 900_000  # under the 1 MB frame limit, as in the report: ~900 KiB frames


def ws_url(gate: Any) -> str:
    return gate.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"


async def raw_socket(gate: Any, user: str | None = "mallory") -> tuple[Any, str]:
    """A websocket speaking Engine.IO frames; Socket.IO-connected as ``user`` unless None."""
    ws = await websockets.connect(ws_url(gate), max_size=None)
    opened = await ws.recv()
    eio_sid = json.loads(opened[1:])["sid"]
    if user is not None:
        await ws.send("40" + json.dumps({"token": gate.token(user)}))
        assert (await ws.recv()).startswith("40")
    return ws, eio_sid


async def frames_until_closed(ws: Any) -> list[str | bytes]:
    frames: list[str | bytes] = []
    async with asyncio.timeout(TIMEOUT):
        try:
            while True:
                frames.append(await ws.recv())
        except websockets.ConnectionClosed:
            return frames


def errors_in(frames: list[Any]) -> list[dict[str, Any]]:
    found = []
    for frame in frames:
        for packet in frame.split("\x1e") if isinstance(frame, str) else []:
            if packet.startswith('42["conversation_error"'):
                found.append(json.loads(packet[2:])[1])
    return found


def partial_packet_gone(gate: Any, eio_sid: str) -> bool:
    sio = gate.app.sio
    return eio_sid not in sio._binary_packet and eio_sid not in sio.partial


async def witness_on(gate: Any) -> AppClient:
    witness = await connect(gate, "witness")
    assert (await witness.call("conversation_start", {"voice": "default"}))["ok"]
    return witness


async def witness_still_answers(witness: AppClient) -> None:
    assert (await witness.call("user_activity_signal"))["ok"]
    assert not witness.of("conversation_error")
    assert (await witness.call("conversation_end"))["ok"]
    await witness.sio.disconnect()


async def test_a_binary_packet_declaring_many_attachments_closes_its_socket_at_once(gate):
    witness = await witness_on(gate)
    ws, eio_sid = await raw_socket(gate)
    count("socket.io binary packets", 1)
    await ws.send("45000-" + json.dumps(["send_audio", PLACEHOLDER]))
    try:
        for _ in range(20):  # before: each one kept (18 MB), waiting for the 5000th
            await ws.send(ATTACHMENT)
    except websockets.ConnectionClosed:
        pass
    frames = await frames_until_closed(ws)
    (error,) = errors_in(frames)
    assert error["code"] == "too_many_attachments" and error["fatal"] is True, error
    assert "TALKGATE_MAX_ATTACHMENTS" in error["message"]
    await wait_until(lambda: partial_packet_gone(gate, eio_sid) and eio_sid not in gate.app.sio.eio.sockets)
    await witness_still_answers(witness)


async def test_a_binary_packet_over_the_message_limit_with_its_attachments_closes_its_socket(gate):
    witness = await witness_on(gate)
    ws, eio_sid = await raw_socket(gate)
    count("socket.io binary packets", 1)
    await ws.send("452-" + json.dumps(["send_audio", PLACEHOLDER, {"_placeholder": True, "num": 1}]))
    try:
        await ws.send(ATTACHMENT)
        await ws.send(ATTACHMENT)  # 1.8 MB together: over TALKGATE_MAX_MESSAGE_BYTES (1 MB)
    except websockets.ConnectionClosed:
        pass
    frames = await frames_until_closed(ws)
    (error,) = errors_in(frames)
    assert error["code"] == "message_too_large" and error["fatal"] is True, error
    await wait_until(lambda: partial_packet_gone(gate, eio_sid) and eio_sid not in gate.app.sio.eio.sockets)
    await witness_still_answers(witness)


@pytest.mark.parametrize("fastpaths", [True, False], ids=["fast-loop", "library-loop"])
async def test_one_websocket_frame_over_the_message_limit_is_refused_by_name_then_closed(
    tmp_path, simulator, fastpaths
):
    """A frame over TALKGATE_MAX_MESSAGE_BYTES, text or binary, on either Engine.IO loop (the fast
    path's and, with it off, the library's): the app is told message_too_large, then the
    connection ends; before, it saw only the socket close."""
    gate = start_gate(tmp_path, simulator, fastpaths=fastpaths)
    try:
        await oversized_frames_are_refused(gate)
    finally:
        gate.server.stop()


async def oversized_frames_are_refused(gate: Any) -> None:
    witness = await witness_on(gate)
    for frame in ("42" + json.dumps(["conversation_message", {"text": "x" * 1_200_000}]), bytes(1_200_000)):
        ws, eio_sid = await raw_socket(gate)
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(frame)
        frames = await frames_until_closed(ws)
        (error,) = errors_in(frames)
        assert error["code"] == "message_too_large" and error["fatal"] is True, error
        assert "1200" in error["message"] and "TALKGATE_MAX_MESSAGE_BYTES" in error["message"], error
        await wait_until(lambda: gone(gate, eio_sid))  # noqa: B023 (awaited here, in this iteration)
    await witness_still_answers(witness)


class Polling:
    """An Engine.IO long-polling client, frame by frame."""

    def __init__(self, gate: Any, client: httpx.AsyncClient) -> None:
        self.url = gate.url + "/socket.io/?EIO=4&transport=polling"
        self.client = client
        self.sid = ""

    async def open(self, token: str) -> str:
        opened = (await self.client.get(self.url)).text
        self.sid = json.loads(opened[1:])["sid"]
        await self.post("40" + json.dumps({"token": token}))
        assert (await self.get()).startswith("40")
        return self.sid

    async def post(self, body: str) -> httpx.Response:
        return await self.client.post(f"{self.url}&sid={self.sid}", content=body.encode())

    async def get(self) -> str:
        return (await self.client.get(f"{self.url}&sid={self.sid}")).text


async def test_long_polling_binary_packets_are_bounded_too(gate):
    witness = await witness_on(gate)
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        many = Polling(gate, client)
        eio_sid = await many.open(gate.token("mallory"))
        count("socket.io binary packets", 2)
        await many.post("45999-" + json.dumps(["send_audio", PLACEHOLDER]))
        received = await many.get()
        assert [e["code"] for e in errors_in([received])] == ["too_many_attachments"], received
        assert partial_packet_gone(gate, eio_sid)
        await wait_until(
            lambda: eio_sid not in gate.app.sio.eio.sockets or gate.app.sio.eio.sockets[eio_sid].closed
        )
        assert (await client.get(f"{many.url}&sid={eio_sid}")).status_code == 400  # Engine.IO: gone

        large = Polling(gate, client)
        eio_sid = await large.open(gate.token("mallory"))
        await large.post("452-" + json.dumps(["send_audio", PLACEHOLDER, {"_placeholder": True, "num": 1}]))
        attachment = "b" + base64.b64encode(bytes(600_000)).decode()  # 800 KB of text: one POST each
        await large.post(attachment)
        await large.post(attachment)  # 1.2 MB of attachments
        received = await large.get()
        assert [e["code"] for e in errors_in([received])] == ["message_too_large"], received
        assert partial_packet_gone(gate, eio_sid)
        await wait_until(
            lambda: eio_sid not in gate.app.sio.eio.sockets or gate.app.sio.eio.sockets[eio_sid].closed
        )
    await witness_still_answers(witness)


def gone(gate: Any, eio_sid: str) -> bool:
    sockets = gate.app.sio.eio.sockets
    return partial_packet_gone(gate, eio_sid) and (eio_sid not in sockets or sockets[eio_sid].closed)


async def test_before_the_socketio_connect_any_binary_message_closes_its_socket(gate):
    """talkgate's connect takes no binary data: before it, a binary packet (here 2 x 900 KB, over the
    message limit) or a bare attachment is refused at once, on websocket and long-polling."""
    witness = await witness_on(gate)
    two = ["send_audio", PLACEHOLDER, {"_placeholder": True, "num": 1}]
    for frames in (["452-" + json.dumps(two), ATTACHMENT, ATTACHMENT], [ATTACHMENT]):
        ws, eio_sid = await raw_socket(gate, user=None)
        count("socket.io binary packets", 1)
        try:
            for frame in frames:  # before: the socket stayed open, its packet waiting
                await ws.send(frame)
        except websockets.ConnectionClosed:
            pass
        assert not errors_in(await frames_until_closed(ws))  # (no Socket.IO socket to tell)
        await wait_until(lambda sid=eio_sid: gone(gate, sid))
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        polling = Polling(gate, client)
        polling.sid = json.loads((await client.get(polling.url)).text[1:])["sid"]
        count("socket.io binary packets", 1)
        await polling.post("451-" + json.dumps(["send_audio", PLACEHOLDER]))
        assert await polling.get() == "1"  # Engine.IO's CLOSE
        await wait_until(lambda: gone(gate, polling.sid))
    await witness_still_answers(witness)


async def test_a_session_without_a_socketio_connect_is_closed_after_the_connect_timeout(tmp_path):
    gate = start_gate(tmp_path, None, connect_timeout_s=0.5)
    try:
        app = await connect(gate, "alice")  # connected in time: it stays
        idle, idle_sid = await raw_socket(gate, user=None)
        left, left_sid = await raw_socket(gate)
        await left.send("41")  # leaves the namespace, keeps the Engine.IO session
        count("idle engine.io sessions", 3)
        await frames_until_closed(idle)  # before: open for as long as the peer answered pings
        await frames_until_closed(left)
        await wait_until(lambda: gone(gate, idle_sid) and gone(gate, left_sid))
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            polling = Polling(gate, client)
            polling.sid = json.loads((await client.get(polling.url)).text[1:])["sid"]
            assert await polling.get() == "1"  # Engine.IO's CLOSE, once the timeout has passed
            await wait_until(lambda: gone(gate, polling.sid))
        assert (await app.call("user_activity_signal"))["error"]["code"] == "no_conversation"
        await app.sio.disconnect()
    finally:
        gate.server.stop()


async def frames_until(ws: Any, prefix: str) -> list[str | bytes]:
    frames: list[str | bytes] = []
    async with asyncio.timeout(TIMEOUT):
        while not (frames and str(frames[-1]).startswith(prefix)):
            frames.append(await ws.recv())
    return frames


async def test_an_event_too_deep_to_decode_is_answered_and_its_socket_carries_on(gate, no_unhandled_errors):
    ws, _ = await raw_socket(gate)
    deep = "[" * 300_000 + "]" * 300_000
    count("socket.io events", 2)
    await ws.send('427["conversation_start",' + deep + "]")
    frames = await frames_until(ws, "437")  # before: neither an acknowledgement nor an error
    (error,) = errors_in(frames)
    assert error["code"] == "bad_request" and error["fatal"] is False, error
    (ack,) = json.loads(str(frames[-1])[3:])
    assert ack["ok"] is False and ack["error"]["code"] == "bad_request", ack
    await ws.send('42["conversation_start",' + deep + "]")  # no acknowledgement asked: the error only
    await ws.send('428["conversation_end"]')
    frames = await frames_until(ws, "438")
    assert [e["code"] for e in errors_in(frames)] == ["bad_request", "no_conversation"], frames
    assert json.loads(str(frames[-1])[3:])[0]["error"]["code"] == "no_conversation"
    await ws.close()


GARBAGE = [
    "42[",  # JSON cut short
    '42["send_audio", {"audio": ',
    "4{",  # no Socket.IO packet type
    "49",  # an unknown one
    "451-not json",
    "x",  # no Engine.IO packet type
    '42["conversation_end"]',  # (before connecting) an event without a namespace
    "42" + "[" * 100_000,  # past json's recursion limit
]
PRE_CONNECT_GARBAGE = [g for g in GARBAGE if not g.startswith("45")]
SHORT_LINE = 300


def talkgate_and_library_records(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [
        r
        for r in records
        if r.name.split(".")[0] in ("talkgate", "socketio", "engineio", "uvicorn", "asyncio")
    ]


async def test_a_thousand_malformed_messages_write_a_few_short_lines(gate, caplog):
    caplog.set_level(logging.INFO)
    witness = await witness_on(gate)
    ws, _ = await raw_socket(gate, user=None)  # not authenticated at first
    for i in range(600):  # (a binary packet before the connect closes its socket: tested above)
        await ws.send(PRE_CONNECT_GARBAGE[i % len(PRE_CONNECT_GARBAGE)])
    await ws.send("40" + json.dumps({"token": gate.token("mallory")}))
    for i in range(600):
        await ws.send(GARBAGE[i % len(GARBAGE)])
    await ws.send('421["conversation_end"]')
    async with asyncio.timeout(TIMEOUT):  # handled in order: the rest has been handled
        while not str(await ws.recv()).startswith("431"):
            pass
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:  # and long-polling's path
        polling = Polling(gate, client)
        await polling.open(gate.token("mallory"))
        for _ in range(40):  # (python-engineio takes at most 16 packets a POST)
            assert (
                await polling.post("\x1e".join(g for g in GARBAGE if g != "x" and len(g) < 100))
            ).is_success
        await polling.post("\x1e".join(["42[", "x"]))  # an Engine.IO-level error fails the whole POST
        await polling.post("41")
    count("malformed socket.io messages", 1200 + 40 * (len(GARBAGE) - 2) + 2)
    await ws.close()
    await wait_until(lambda: any("suppressed" in r.getMessage() for r in caplog.records))
    await witness_still_answers(witness)

    lines = talkgate_and_library_records(caplog.records)
    about_garbage = [r for r in lines if r.levelno >= logging.WARNING]
    assert len(about_garbage) <= 30, [r.getMessage()[:120] for r in about_garbage]
    assert not [r for r in lines if r.exc_info or "Traceback" in r.getMessage()]
    assert all(len(r.getMessage()) <= SHORT_LINE for r in lines), max(len(r.getMessage()) for r in lines)
    suppressed = [r.getMessage() for r in lines if "suppressed" in r.getMessage()]
    assert sum(int(m.split()[2]) for m in suppressed if m.startswith("peer ")) >= 500, suppressed


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth - 1):
        value = {"k": value}
    return {"k": value}


async def test_conversation_start_fields_are_capped_in_bytes_and_depth(gate):
    app = await connect(gate, "mallory")
    try:
        for field in ("metadata", "dynamicVariables", "overrides"):
            for value, why in ((nested(40), "deeper"), ({"blob": "x" * 70_000}, "bytes")):
                count("conversation_start fields")
                ack = await app.call("conversation_start", {"voice": "default", field: value})
                assert ack["ok"] is False and ack["error"]["code"] == "field_too_large", ack
                assert field in ack["error"]["message"] and why in ack["error"]["message"]
        assert [e["code"] for e in app.of("conversation_error")] == ["field_too_large"] * 6
        assert not gate.app.runtime.relays and not gate.app.sio.conversations_of
        ack = await app.call("conversation_start", {"voice": "default", "metadata": nested(7)})
        assert ack["ok"], ack  # within the bounds: as before
        assert (await app.call("conversation_end"))["ok"]
    finally:
        await app.sio.disconnect()


class UnreadSocket:
    """A websocket client (websockets' sans-I/O protocol on a bare TCP stream) that sends and never
    reads once connected: what it is sent fills the kernel's buffers, then the server's queue."""

    def __init__(self, writer: asyncio.StreamWriter, protocol: ClientProtocol) -> None:
        self.writer, self.protocol = writer, protocol

    @classmethod
    async def open(cls, gate: Any) -> tuple[UnreadSocket, str]:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", gate.server.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        protocol = ClientProtocol(parse_uri(ws_url(gate)), max_size=None)
        protocol.send_request(protocol.connect())
        self = cls(writer, protocol)
        await self.flush()
        opened = None
        while opened is None:  # the handshake's response, then Engine.IO's open packet
            protocol.receive_data(await reader.read(65536))
            opened = next((e for e in protocol.events_received() if isinstance(e, Frame)), None)
        await self.send("40" + json.dumps({"token": gate.token("mallory")}))
        return self, json.loads(opened.data[1:])["sid"]

    async def flush(self) -> None:
        self.writer.write(b"".join(self.protocol.data_to_send()))
        await self.writer.drain()

    async def send(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        await self.flush()


async def test_a_socket_that_sends_without_reading_is_closed_at_its_backlog_limit(tmp_path, simulator):
    gate = start_gate(tmp_path, simulator, max_socket_backlog=200)
    try:
        witness = await witness_on(gate)
        unread, eio_sid = await UnreadSocket.open(gate)
        try:
            sio = gate.app.sio
            deepest = sent = 0
            with contextlib.suppress(ConnectionError):
                for batch in range(1000):  # at most 100,000 events, each answered with an ack and an error
                    for i in range(100):
                        try:  # a server that closed this socket stops reading it: what we send waits
                            async with asyncio.timeout(TIMEOUT):
                                await unread.send(f'42{batch * 100 + i}["{"x" * 60}"]')
                        except TimeoutError:
                            raise ConnectionError("the server no longer reads this socket") from None
                    sent += 100
                    engine_socket = sio.eio.sockets.get(eio_sid)
                    if engine_socket is None or engine_socket.closed:
                        break
                    deepest = max(deepest, engine_socket.queue.qsize())
            count("unread socket.io events", sent)
            await wait_until(lambda: eio_sid not in sio.eio.sockets or sio.eio.sockets[eio_sid].closed)
            assert deepest <= 200 + 2 * 100 + 2, deepest  # the limit, plus one batch's answers
        finally:
            # A peer that never reads cannot close gracefully (its unsent bytes never drain): it drops.
            unread.writer.transport.abort()
        await witness_still_answers(witness)
    finally:
        gate.server.stop()


async def test_binary_values_in_conversation_start_fields_are_a_bad_request(gate):
    app = await connect(gate, "mallory")
    try:
        count("conversation_start fields")
        ack = await app.call("conversation_start", {"voice": "default", "metadata": {"blob": b"\x00\x01"}})
        assert ack["ok"] is False and ack["error"]["code"] == "bad_request", ack
        assert "JSON values only" in ack["error"]["message"]
    finally:
        await app.sio.disconnect()


async def test_a_bug_one_peer_can_set_off_logs_its_traceback_a_few_times_only(gate, caplog, monkeypatch):
    from talkgate.protocol import app_events

    def broken(payload: Any) -> Any:
        raise RuntimeError("a bug in talkgate")

    monkeypatch.setattr(app_events.ConversationStart, "parse", staticmethod(broken))
    caplog.set_level(logging.WARNING)
    app = await connect(gate, "mallory")
    try:
        for _ in range(30):
            count("socket.io events")
            ack = await app.call("conversation_start", {})
            assert ack["error"] == {"code": "internal", "message": "internal error"}, ack
    finally:
        await app.sio.disconnect()
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert 1 <= len(tracebacks) <= 10, len(tracebacks)
    assert "a bug in talkgate" in caplog.text
