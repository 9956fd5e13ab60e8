"""The media socket ``/ws/elevenlabs-media`` (media-stream recording): the WebSocket adapter of
``talkgate.calls.media``. A URL that is not one talkgate signed is refused at the handshake
(HTTP 403), before a byte is stored; ``call_end`` or a disconnect finalises the recording."""

from __future__ import annotations

import asyncio
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect

from talkgate.calls.media import MEDIA_PATH, MediaStreamCall, check_media_request, claim, media_url
from talkgate.calls.runtime import Runtime
from talkgate.errors import AuthError

__all__ = ["MEDIA_PATH", "media_socket", "media_url"]

log = logging.getLogger("talkgate.media")


async def media_socket(websocket: WebSocket) -> None:
    rt: Runtime = websocket.app.state.runtime
    try:
        cid = check_media_request(rt.settings, websocket.query_params)
    except AuthError as exc:
        log.warning("media socket refused: %s", exc.message)
        await websocket.close(1008)  # before accept: the handshake fails with 403
        return
    call = await claim(rt, cid)
    if isinstance(call, str):
        await websocket.close(1008)
        return
    await websocket.accept()
    media = await MediaStreamCall.open(rt, call)
    if media is None:
        await websocket.close(1011, "storage unavailable")  # the provider may retry
        return
    try:
        while await media.take(await websocket.receive_text()):
            pass
    except (WebSocketDisconnect, RuntimeError):
        log.info("media %s: socket closed without call_end", cid)
    finally:
        # Shielded: a server shutdown must not cut the finalisation short.
        await asyncio.shield(media.finish())
