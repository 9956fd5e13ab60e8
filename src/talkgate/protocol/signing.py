"""HMAC signatures with explicit clocks: media-socket URLs and the post-call webhook header.

Pure: the caller passes ``now``; no clock is read here.
"""

from __future__ import annotations

import hashlib
import hmac

from talkgate.errors import AuthError

WEBHOOK_TOLERANCE_S = 30 * 60  # ElevenLabs' reference check rejects older than 30 minutes


def media_signature(secret: bytes, conversation_id: str, expires: int) -> str:
    """Signature carried by the media-socket URL talkgate hands out for one conversation."""
    msg = f"media:{conversation_id}:{expires}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def verify_media_signature(
    secret: bytes, conversation_id: str, expires: int, signature: str, now: float
) -> None:
    expected = media_signature(secret, conversation_id, expires)
    if not hmac.compare_digest(expected, signature):
        raise AuthError("media stream signature does not match its conversation id")
    if now > expires:
        raise AuthError("media stream URL has expired")


def audio_signature(secret: bytes, user_id: str, conversation_id: str, expires: int) -> str:
    """Signature of a playback link: one user's recording of one call, until ``expires``."""
    msg = f"audio:{user_id}:{conversation_id}:{expires}".encode()
    return hmac.new(secret, msg, hashlib.sha256).hexdigest()


def verify_audio_signature(
    secret: bytes, user_id: str, conversation_id: str, expires: int, signature: str, now: float
) -> None:
    expected = audio_signature(secret, user_id, conversation_id, expires)
    if not hmac.compare_digest(expected, signature):
        raise AuthError("playback link signature does not match")
    if now > expires:
        raise AuthError("playback link has expired")


def webhook_signature_header(secret: bytes, body: bytes, timestamp: int) -> str:
    """``ElevenLabs-Signature: t=<unix>,v0=<hex HMAC-SHA256(secret, "t.body")>``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v0={mac}"


def verify_webhook_signature(secret: bytes, body: bytes, header: str | None, now: float) -> None:
    if not header:
        raise AuthError("missing ElevenLabs-Signature header")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
        given = parts["v0"]
    except (KeyError, ValueError) as exc:
        raise AuthError("malformed ElevenLabs-Signature header") from exc
    if abs(now - timestamp) > WEBHOOK_TOLERANCE_S:
        raise AuthError("webhook signature timestamp is outside the 30-minute tolerance")
    expected = webhook_signature_header(secret, body, timestamp).split("v0=", 1)[1]
    if not hmac.compare_digest(expected, given):
        raise AuthError("webhook signature does not match")
