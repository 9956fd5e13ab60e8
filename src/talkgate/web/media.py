"""Seed 001's media socket ``/ws/elevenlabs-media``: the provider streams both sides of a call here.

The URL talkgate hands out (``media_url``) carries the conversation id, an expiry and an HMAC over
both; anything else is refused at the handshake (HTTP 403), before a byte is stored. Frames are
JSON (PROTOCOL.md §3); every type is logged at debug. ``call_end`` or a disconnect finalises the
recording; a bad frame is logged and skipped, and the call goes on.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any
from urllib.parse import urlencode

from starlette.websockets import WebSocket, WebSocketDisconnect

from talkgate import logs, metrics
from talkgate.auth import signing_keys
from talkgate.errors import AuthError, TalkgateError
from talkgate.persistence.models import AudioSource, CallLog, CallStatus
from talkgate.protocol.audio import b64decode_audio, validate_pcm16
from talkgate.protocol.media import CallEnd, MediaAudio, Track, parse_media_event
from talkgate.protocol.signing import KeyRing, media_signature, verify_media_signature
from talkgate.recording.mixer import AGENT, CALLER
from talkgate.settings import Settings

log = logging.getLogger("talkgate.media")

MEDIA_PATH = "/ws/elevenlabs-media"
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
URL_TTL_S = 3600  # the provider dials the socket when the call starts
MAX_FRAME_AUDIO = 512 * 1024
TRACKS = {Track.CALLER: CALLER, Track.AGENT: AGENT}


def media_secret(settings: Settings) -> KeyRing:
    return signing_keys(settings, "media")


def media_url(settings: Settings, conversation_id: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + URL_TTL_S)
    signature = media_signature(media_secret(settings), conversation_id, expires)
    base = settings.effective_public_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    query = urlencode({"conversation_id": conversation_id, "expires": expires, "signature": signature})
    return f"{base}{MEDIA_PATH}?{query}"


def check_media_request(settings: Settings, params: Any) -> str:
    """The conversation id the socket is for, or AuthError."""
    cid = params.get("conversation_id") or ""
    if not ID_PATTERN.match(cid):
        raise AuthError("media socket without a valid conversation_id")
    try:
        expires = int(params.get("expires") or "")
    except ValueError:
        raise AuthError("media socket URL lacks its expiry") from None
    verify_media_signature(media_secret(settings), cid, expires, params.get("signature") or "", time.time())
    return cid


def _refusal(call: CallLog | None, live_here: bool) -> str | None:
    if call is None:
        return "unknown call"
    if live_here:
        return "already live"
    if call.status != CallStatus.ACTIVE:
        return "the call has ended"
    return None


async def media_socket(websocket: WebSocket) -> None:
    from talkgate.web.runtime import Runtime

    rt: Runtime = websocket.app.state.runtime
    try:
        cid = check_media_request(rt.settings, websocket.query_params)
    except AuthError as exc:
        log.warning("media socket refused: %s", exc.message)
        await websocket.close(1008)  # before accept: the handshake fails with 403
        return
    call = await rt.repo.call_by_conversation(cid)
    refusal = _refusal(call, cid in rt.recordings.live)
    # The claim is the cross-process check: one socket per issued URL, only while the call is on.
    if refusal is None and not await rt.repo.claim_media(cid):
        refusal = "its media recording is live elsewhere, finalized, or the call has ended"
    if refusal is not None:
        log.warning("media socket refused for %s: %s", cid, refusal)
        await websocket.close(1008)
        return
    assert call is not None
    frame_ids = {cid, call.provider_conversation_id}
    logs.conversation_id.set(cid)
    await websocket.accept()
    try:
        live = await rt.recordings.start(call, AudioSource.MEDIA_STREAM)
    except (OSError, TalkgateError) as exc:
        log.error("media %s: cannot record: %s", cid, exc)
        await rt.repo.finalize_media(cid)
        await websocket.close(1011, "storage unavailable")  # the provider may retry
        return
    frames = bad = 0
    metrics.CONVERSATIONS.labels("media_stream").inc()
    live_gauge = metrics.LIVE_CONVERSATIONS.labels("media_stream")
    live_gauge.inc()
    try:
        while True:
            raw = await websocket.receive_text()
            frames += 1
            try:
                event = parse_media_event(raw)
                if isinstance(event, MediaAudio):
                    log.debug("media %s: %s", cid, event.track.value)
                    if event.conversation_id not in frame_ids:
                        raise AuthError("media frame for another conversation")
                    pcm = validate_pcm16(b64decode_audio(event.audio_base_64, max_bytes=MAX_FRAME_AUDIO))
                    await live.recorder.add(TRACKS[event.track], pcm)
                elif isinstance(event, CallEnd):
                    log.debug("media %s: call_end", cid)
                    break
                else:
                    log.debug("media %s: %s", cid, event.type)
            except TalkgateError as exc:
                bad += 1
                log.warning("media %s: frame %d skipped: %s", cid, frames, exc.message)
    except (WebSocketDisconnect, RuntimeError):
        log.info("media %s: socket closed without call_end", cid)
    finally:
        # Shielded: a server shutdown must not cut the finalisation short.
        await asyncio.shield(rt.recordings.finish(live))
        live_gauge.dec()
        log.info("media %s: %d frames (%d skipped)", cid, frames, bad)
