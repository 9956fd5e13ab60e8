"""Fast path ``upstream_write``: the relay's frames to the provider written through websockets'
protocol object instead of ``ClientConnection.send()``.

The relay sends one frame per audio chunk. websockets' ``send()`` wraps each frame in an async
context manager whose only work, when the socket is open and the transport is not paused, is
``protocol.send_text()`` then ``send_data()``; it was a third of the upstream send's CPU. Here those
two calls are made directly whenever that state holds; anything else (closing, paused by flow
control, a fragmented send in progress) takes ``send()``, as does every frame where websockets'
connection lacks what this reads (a release that renames it) or where fast paths are off.

When the protocol object has nothing else to do for the frame (no extension negotiated, nothing of
its own waiting to be written, no debug log), the masked frame is built here and handed to the
transport in one write: websockets' ``send_text`` builds a ``Frame``, serializes it through a
generic path and queues it in a list that ``send_data`` then drains, about half of the upstream
write's cost per chunk. The mask is four bytes from ``os.urandom``, as websockets draws it.

Whether it is used is decided per process (``enable``, from ``talkgate.fastpaths.install_relay``)
and per connection (``usable``, once when the conversation opens), so a chunk pays for one call.
"""

from __future__ import annotations

import os
import struct

from websockets.asyncio.client import ClientConnection
from websockets.protocol import Protocol, State

try:  # websockets' C mask (built for every platform it ships wheels for); else its Python one
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

# What ``write`` reads of a connection (websockets' asyncio implementation, as checked in pyproject.toml).
CONNECTION_ATTRIBUTES = ("protocol", "transport", "paused", "send_in_progress", "send_data")
# What the frame built here relies on of the protocol object: that it is idle between frames.
PROTOCOL_ATTRIBUTES = ("extensions", "writes", "debug", "expect_continuation_frame")

_enabled = True


def library_fits() -> bool:
    """Whether the installed websockets has, on its classes, the methods ``write`` calls."""
    return callable(getattr(ClientConnection, "send_data", None)) and callable(
        getattr(Protocol, "send_text", None)
    )


def enable(on: bool) -> None:
    """Use the direct write (where it fits) for conversations opened from now on in this process."""
    global _enabled
    _enabled = on


def usable(ws: ClientConnection) -> bool:
    """Whether this connection's frames may be written directly (when ``write`` finds it ready)."""
    return (
        _enabled
        and all(hasattr(ws, name) for name in CONNECTION_ATTRIBUTES)
        and all(hasattr(ws.protocol, name) for name in PROTOCOL_ATTRIBUTES)
    )


def masked_text_frame(payload: bytes, mask: bytes) -> bytes:
    """One final, masked text frame (RFC 6455 §5.2) of ``payload``, as a client sends it."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    return head + mask + apply_mask(payload, mask)


def write(ws: ClientConnection, frame: bytes) -> bool:
    """Write one text frame now, as ``send()`` would; False (nothing written) where the connection
    is not in the plain open state, for ``send()`` to handle. A failed write aborts the connection
    (as ``send()`` does) and raises."""
    if ws.protocol.state is not State.OPEN or ws.paused or ws.send_in_progress is not None:
        return False
    if ws.transport.is_closing():
        return False
    protocol = ws.protocol
    try:
        if protocol.extensions or protocol.writes or protocol.debug or protocol.expect_continuation_frame:
            protocol.send_text(frame)
            ws.send_data()
        else:
            ws.transport.write(masked_text_frame(frame, os.urandom(4)))
    except Exception:
        ws.transport.abort()
        raise
    return True
