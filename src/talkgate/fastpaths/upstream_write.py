"""Fast path ``upstream_write``: the relay's frames to the provider written through websockets'
protocol object instead of ``ClientConnection.send()``.

The relay sends one frame per audio chunk. websockets' ``send()`` wraps each frame in an async
context manager whose only work, when the socket is open and the transport is not paused, is
``protocol.send_text()`` then ``send_data()``; it was a third of the upstream send's CPU. Here those
two calls are made directly whenever that state holds; anything else (closing, paused by flow
control, a fragmented send in progress) takes ``send()``, as does every frame where websockets'
connection lacks what this reads (a release that renames it) or where fast paths are off.

Whether it is used is decided per process (``enable``, from ``talkgate.fastpaths.install_relay``)
and per connection (``usable``, once when the conversation opens), so a chunk pays for one call.
"""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection
from websockets.protocol import Protocol, State

# What ``write`` reads of a connection (websockets' asyncio implementation, as checked in pyproject.toml).
CONNECTION_ATTRIBUTES = ("protocol", "transport", "paused", "send_in_progress", "send_data")

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
    return _enabled and all(hasattr(ws, name) for name in CONNECTION_ATTRIBUTES)


def write(ws: ClientConnection, frame: bytes) -> bool:
    """Write one text frame now, as ``send()`` would; False (nothing written) where the connection
    is not in the plain open state, for ``send()`` to handle. A failed write aborts the connection
    (as ``send()`` does) and raises."""
    if ws.protocol.state is not State.OPEN or ws.paused or ws.send_in_progress is not None:
        return False
    if ws.transport.is_closing():
        return False
    ws.protocol.send_text(frame)
    try:
        ws.send_data()
    except Exception:
        ws.transport.abort()
        raise
    return True
