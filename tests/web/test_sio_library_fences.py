"""What talkgate's Socket.IO bounds read of python-socketio/engineio, checked against the installed
release (a release that changes them makes these fail, and the server say so in its log), and the
pure parts of those bounds."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import socketio

from talkgate.calls.relay import json_bounds_error
from talkgate.logs import PeerNoise
from talkgate.web.sio import RelayServer, declared_attachments


def relay_server(**options: Any) -> RelayServer:
    return RelayServer(
        max_attachments=2, noise=PeerNoise(10), async_mode="asgi", max_http_buffer_size=1000, **options
    )


def test_the_installed_python_socketio_routes_messages_through_the_bounded_method():
    server = relay_server()
    assert server.bounded
    # What the override relies on: the library's own method, its partial packets, its packet syntax.
    assert callable(getattr(socketio.AsyncServer, "_handle_eio_message", None))
    assert callable(getattr(socketio.AsyncServer, "_handle_eio_disconnect", None))
    assert isinstance(server._binary_packet, dict) and isinstance(server.environ, dict)
    for text, count in (('51-["a",{"_placeholder":true,"num":0}]', 1), ('62-/chat,7["b"]', 2)):
        assert (
            server.packet_class(encoded_packet=text).attachment_count == count == declared_attachments(text)
        )


def test_a_release_that_routes_messages_elsewhere_is_said_in_the_log(caplog, monkeypatch):
    server = relay_server()

    async def elsewhere(eio_sid: str, data: Any) -> None:
        return None

    server.eio.on("message", elsewhere)
    assert not server.library_fits()

    init = socketio.AsyncServer.__init__

    def without_partial_packets(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        del self._binary_packet

    monkeypatch.setattr(socketio.AsyncServer, "__init__", without_partial_packets)
    caplog.set_level(logging.WARNING, "talkgate.sio")
    server = relay_server()
    assert not server.bounded
    assert "binary packets are not bounded" in caplog.text
    server._drop_partial("x")  # without the library's dict: nothing of it to drop, and no error


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ('51-["send_audio",{"_placeholder":true,"num":0}]', 1),
        ('55000-["x"]', 5000),
        ('5["x", "a-b"]', 0),  # a dash in the JSON is no count
        ("5-1", 0),
        ("5²-[]", 0),  # a digit to str.isdigit, not to int()
        ("5" + "9" * 20 + "-[]", 10**11),  # too long to be a count
        ("5" + "9" * 5000 + "-[]", 10**11),  # past int()'s digit limit
    ],
)
def test_declared_attachments(text: str, count: int):
    assert declared_attachments(text) == count


def test_json_bounds_measure_depth_without_recursion():
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    assert json_bounds_error(deep, 1000, 8) == "is nested deeper than 8 levels"
    assert json_bounds_error({"a": [{"b": 1}]}, 1000, 3) is None
    assert json_bounds_error({"a": [{"b": []}]}, 1000, 3) == "is nested deeper than 3 levels"
    assert "over the limit of 10" in (json_bounds_error({"k": "é" * 10}, 10, 8) or "")
