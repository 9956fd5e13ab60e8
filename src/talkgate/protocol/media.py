"""The media-stream recording: frames the provider sends talkgate's ``/ws/elevenlabs-media`` socket.

``{"type":"audio_input"|"audio_output","conversation_id":…,"audio":"<b64 PCM16 16 kHz mono>"}``
and ``{"type":"call_end","conversation_id":…}``. Not in ElevenLabs' published API (docs/protocol.md §3).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from talkgate.errors import AuthError, ErrorCode, ProtocolError
from talkgate.protocol.audio import PCM_16000, AudioFormat

MEDIA_FORMAT: AudioFormat = PCM_16000


CONVERSATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


@dataclass(frozen=True, slots=True)
class MediaGrant:
    """The query of the media socket URL talkgate hands the provider at the conversation start:
    which call the stream is for, until when, and talkgate's signature over both."""

    conversation_id: str
    expires: int
    signature: str

    def query(self) -> str:
        return urlencode(
            {"conversation_id": self.conversation_id, "expires": self.expires, "signature": self.signature}
        )

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> MediaGrant:
        """The grant as the socket's query gives it (its signature still to be checked); AuthError."""
        cid = params.get("conversation_id") or ""
        if not CONVERSATION_ID.match(cid):
            raise AuthError("media socket without a valid conversation_id")
        try:
            expires = int(params.get("expires") or "")
        except ValueError:
            raise AuthError("media socket URL lacks its expiry") from None
        return cls(cid, expires, params.get("signature") or "")


class Track(StrEnum):
    CALLER = "audio_input"
    AGENT = "audio_output"


@dataclass(frozen=True, slots=True)
class MediaAudio:
    track: Track
    conversation_id: str
    audio_base_64: str

    def serialize(self) -> str:
        return json.dumps(
            {"type": self.track.value, "conversation_id": self.conversation_id, "audio": self.audio_base_64},
            separators=(",", ":"),
        )


@dataclass(frozen=True, slots=True)
class CallEnd:
    conversation_id: str

    def serialize(self) -> str:
        return json.dumps(
            {"type": "call_end", "conversation_id": self.conversation_id}, separators=(",", ":")
        )


@dataclass(frozen=True, slots=True)
class UnknownMediaEvent:
    type: str
    payload: dict[str, Any] = field(default_factory=dict)


MediaEvent = MediaAudio | CallEnd | UnknownMediaEvent


def parse_media_event(raw: str | bytes) -> MediaEvent:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"media frame is not JSON: {exc}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ProtocolError("media frame is not an object with a type")
    kind = obj["type"]
    cid = obj.get("conversation_id")
    if kind in (Track.CALLER, Track.AGENT, "call_end") and not isinstance(cid, str):
        raise ProtocolError(f"{kind} frame lacks conversation_id")
    if kind == "call_end":
        assert isinstance(cid, str)
        return CallEnd(cid)
    if kind in (Track.CALLER, Track.AGENT):
        audio = obj.get("audio")
        if not isinstance(audio, str):
            raise ProtocolError(f"{kind} frame lacks audio", code=ErrorCode.BAD_AUDIO)
        assert isinstance(cid, str)
        return MediaAudio(Track(kind), cid, audio)
    return UnknownMediaEvent(kind, {k: v for k, v in obj.items() if k != "type"})
