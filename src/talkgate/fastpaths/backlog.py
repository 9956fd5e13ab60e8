"""Fast path ``backlog_reader``: how many packets wait in a Socket.IO socket's outgoing queue.

python-socketio has no public way to ask; the relay drops agent audio for an app whose queue is
deep (``RelaySession``'s ``max_app_backlog``) rather than let it grow. This reads the Engine.IO
socket's queue through the manager's sid table. Where the library differs, or fast paths are off,
every socket reads as empty: agent audio is then never dropped for a slow app, and such an app is
closed once its queue passes ``TALKGATE_MAX_SOCKET_BACKLOG`` instead (``RelayServer``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Backlog = Callable[[], int]  # the current queue length of one socket
BacklogOf = Callable[[str], Backlog]  # Socket.IO sid → its reader


def library_fits(sio: Any) -> bool:
    """Whether ``sio`` (a python-socketio AsyncServer) has the tables and queue this reads."""
    return (
        callable(getattr(sio.manager, "eio_sid_from_sid", None))
        and isinstance(getattr(sio.eio, "sockets", None), dict)
        and callable(getattr(sio.eio, "create_queue", None))  # what a socket's ``queue`` is made by
    )


def empty(sid: str) -> Backlog:
    """The library's path: no queue length to read."""
    return _zero


def _zero() -> int:
    return 0


def reader(sio: Any) -> BacklogOf:
    """Readers of ``sio``'s sockets' queue lengths (0 for a socket that is gone)."""
    manager, sockets = sio.manager, sio.eio.sockets

    def backlog_of(sid: str) -> Backlog:
        def size() -> int:
            eio_sid = manager.eio_sid_from_sid(sid, "/")
            socket = sockets.get(eio_sid) if eio_sid else None
            return socket.queue.qsize() if socket is not None else 0

        return size

    return backlog_of
