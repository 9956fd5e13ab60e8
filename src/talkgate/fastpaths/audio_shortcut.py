"""Fast path ``send_audio_predecode``: the relay's ``send_audio`` taken by its text, before
python-socketio decodes it.

Given to the Engine.IO read loop (``engine_loop``), so it works only where that loop took. The
event in its usual form (base64, no acknowledgement, as socket.io-client and python-socketio write
it) goes straight to the same handler python-socketio would call; anything else (an
acknowledgement id, a binary attachment, a JSON escape, another field) takes the general path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from talkgate.fastpaths.engine_loop import Shortcut

# As socket.io-client (JSON.stringify) and python-socketio (json.dumps) write the event.
AUDIO_HEADS = ('2["send_audio",{"audio":"', '2["send_audio", {"audio": "')
AUDIO_TAIL = '"}]'

Handler = Callable[[str, Any], Awaitable[Any]]


def library_fits(sio: Any) -> bool:
    """Whether ``sio`` (talkgate's RelayServer) has what the shortcut reads before handing over."""
    manager = sio.manager
    return (
        callable(getattr(manager, "sid_from_eio_sid", None))
        and callable(getattr(manager, "is_connected", None))
        and isinstance(getattr(sio.eio, "sockets", None), dict)
        and isinstance(getattr(sio, "partial", None), dict)
    )


def shortcut(sio: Any, on_audio: Handler) -> Shortcut:
    """The shortcut for ``sio``'s read loop; ``on_audio(sid, {"audio": text})`` handles the event."""
    binary_pending = sio.partial  # a binary packet awaiting attachments: the next message is one
    sockets = sio.eio.sockets
    manager = sio.manager
    max_backlog = sio.max_backlog
    compact, spaced = AUDIO_HEADS

    def audio_shortcut(eio_sid: str, text: str) -> Awaitable[Any] | None:
        # Two plain tests rather than a search over AUDIO_HEADS: a generator per message otherwise.
        if text.startswith(compact):
            head = len(compact)
        elif text.startswith(spaced):
            head = len(spaced)
        else:
            return None
        if not text.endswith(AUDIO_TAIL) or eio_sid in binary_pending:
            return None
        socket = sockets.get(eio_sid)
        if socket is None or socket.queue.qsize() > max_backlog:
            return None  # the general path closes it
        audio = text[head : -len(AUDIO_TAIL)]
        if '"' in audio or "\\" in audio:
            return None
        sid = manager.sid_from_eio_sid(eio_sid, "/")
        if sid is None or not manager.is_connected(sid, "/"):
            return None
        return on_audio(sid, {"audio": audio})

    return audio_shortcut
