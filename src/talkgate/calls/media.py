"""Media-stream recording calls: the provider streams both sides of a direct call to talkgate.

The URL talkgate hands out (``media_url``) carries the conversation id, an expiry and an HMAC over
both; anything else is refused before a byte is stored. One socket per issued URL, only while the
call is on (``open``); each frame is recorded or skipped (``take``); ``finish`` finalises.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from talkgate import logs, metrics
from talkgate.auth import signing_keys
from talkgate.calls.recordings import LiveRecording
from talkgate.calls.runtime import Runtime
from talkgate.errors import AuthError, TalkgateError
from talkgate.persistence.models import AudioSource, CallLog, CallStatus
from talkgate.protocol.audio import b64decode_audio, validate_pcm16
from talkgate.protocol.media import CallEnd, MediaAudio, MediaGrant, Track, parse_media_event
from talkgate.protocol.signing import KeyRing, media_signature, verify_media_signature
from talkgate.recording.mixer import AGENT, CALLER
from talkgate.settings import Settings

log = logging.getLogger("talkgate.media")

MEDIA_PATH = "/ws/elevenlabs-media"
URL_TTL_S = 3600  # the provider dials the socket when the call starts
MAX_FRAME_AUDIO = 512 * 1024
TRACKS = {Track.CALLER: CALLER, Track.AGENT: AGENT}


def media_secret(settings: Settings) -> KeyRing:
    return signing_keys(settings, "media")


def media_url(settings: Settings, conversation_id: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + URL_TTL_S)
    signature = media_signature(media_secret(settings), conversation_id, expires)
    base = settings.effective_public_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    return f"{base}{MEDIA_PATH}?{MediaGrant(conversation_id, expires, signature).query()}"


def check_media_request(settings: Settings, params: Any) -> str:
    """The conversation id the socket is for, or AuthError."""
    grant = MediaGrant.parse(params)
    verify_media_signature(
        media_secret(settings), grant.conversation_id, grant.expires, grant.signature, time.time()
    )
    return grant.conversation_id


def refusal(call: CallLog | None, live_here: bool) -> str | None:
    if call is None:
        return "unknown call"
    if live_here:
        return "already live"
    if call.status != CallStatus.ACTIVE:
        return "the call has ended"
    return None


async def claim(rt: Runtime, cid: str) -> CallLog | str:
    """The call whose media this socket may record, or why not. The claim is the cross-process
    check: one socket per issued URL, only while the call is on. It names the call's live
    recording in the same transaction (group-committed with the claims of sockets opening at the
    same time); only a refused claim reads the call again, to say why."""
    if cid in rt.recordings.live:
        why: str | None = "already live"
    else:
        call = await rt.repo.claim_media_recording(cid)
        if call is not None:
            return call
        why = refusal(await rt.repo.call_by_conversation(cid), False)
    why = why or "its media recording is live elsewhere, finalized, or the call has ended"
    log.warning("media socket refused for %s: %s", cid, why)
    return why


@dataclass
class MediaStreamCall:
    """One claimed media socket's recording."""

    rt: Runtime
    call: CallLog
    live: LiveRecording
    frames: int = 0
    bad: int = 0

    @property
    def cid(self) -> str:
        return self.call.conversation_id

    @classmethod
    async def open(cls, rt: Runtime, call: CallLog) -> MediaStreamCall | None:
        """Start recording the claimed call; None when it cannot be recorded (claim released)."""
        cid = call.conversation_id
        logs.conversation_id.set(cid)
        try:
            live = await rt.recordings.start(call, AudioSource.MEDIA_STREAM, announced=True)
        except (OSError, TalkgateError) as exc:
            log.error("media %s: cannot record: %s", cid, exc)
            await rt.repo.finalize_media(cid)
            await rt.repo.mark_recording(cid, None)  # the claim named it: no recording will come
            return None
        metrics.CONVERSATIONS.labels("media_stream").inc()
        metrics.LIVE_CONVERSATIONS.labels("media_stream").inc()
        return cls(rt, call, live)

    async def take(self, raw: str) -> bool:
        """Record one frame; False once the call has ended (``call_end``). A bad frame is logged
        and skipped, and the call goes on."""
        self.frames += 1
        try:
            event = parse_media_event(raw)
            if isinstance(event, MediaAudio):
                log.debug("media %s: %s", self.cid, event.track.value)
                if event.conversation_id not in (self.cid, self.call.provider_conversation_id):
                    raise AuthError("media frame for another conversation")
                pcm = validate_pcm16(b64decode_audio(event.audio_base_64, max_bytes=MAX_FRAME_AUDIO))
                await self.live.recorder.add(TRACKS[event.track], pcm)
            elif isinstance(event, CallEnd):
                log.debug("media %s: call_end", self.cid)
                return False
            else:
                log.debug("media %s: %s", self.cid, event.type)
        except TalkgateError as exc:
            self.bad += 1
            log.warning("media %s: frame %d skipped: %s", self.cid, self.frames, exc.message)
        return True

    async def finish(self) -> None:
        await self.rt.recordings.finish(self.live)
        metrics.LIVE_CONVERSATIONS.labels("media_stream").dec()
        log.info("media %s: %d frames (%d skipped)", self.cid, self.frames, self.bad)
