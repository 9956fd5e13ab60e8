"""The relay's upstream frames built by the ``upstream_write`` fast path, read back by websockets'
own server-side parser: every length form of RFC 6455 (7-bit, 16-bit, 64-bit)."""

from __future__ import annotations

import os

import pytest
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State

from talkgate.fastpaths.upstream_write import masked_text_frame

pytestmark = [pytest.mark.unit, pytest.mark.timeout(5)]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 4291, 65535, 65536, 200_000])
def test_a_built_frame_is_what_websockets_reads(size: int) -> None:
    payload = (b'{"user_audio_chunk":"' + b"QUJD" * (size // 4 + 1))[:size]
    server = Protocol(Side.SERVER, state=State.OPEN, max_size=None)  # past the handshake: frames only
    server.receive_data(
        masked_text_frame(payload, os.urandom(4)) + masked_text_frame(b"next", b"\x00\xff\x10\x7f")
    )
    frames = [e for e in server.events_received() if isinstance(e, Frame)]
    assert [(f.opcode, f.fin, bytes(f.data)) for f in frames] == [
        (Opcode.TEXT, True, payload),
        (Opcode.TEXT, True, b"next"),
    ]
    assert server.state is State.OPEN  # no protocol error: the server would have closed


def test_the_frame_is_masked() -> None:
    """A client's frame is masked (a server closes on an unmasked one): the payload is not there as is."""
    payload = b'{"user_audio_chunk":"AAAAAAAAAAAA"}'
    frame = masked_text_frame(payload, b"\x01\x02\x03\x04")
    assert frame[:2] == bytes([0x81, 0x80 | len(payload)]) and frame[2:6] == b"\x01\x02\x03\x04"
    assert payload not in frame
