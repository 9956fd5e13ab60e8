"""HMAC signatures with explicit clocks: media-socket URLs, playback links and the post-call
webhook header.

Pure: the caller passes ``now``; no clock is read here.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from talkgate.errors import AuthError


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The keys of one purpose: a signature is made with ``current``; one made with ``current`` or
    any of ``previous`` (a retired secret, during a rotation) is accepted."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    @property
    def accepted(self) -> tuple[bytes, ...]:
        return (self.current, *self.previous)


Keys = bytes | KeyRing  # one key, or a ring


def _signing_key(keys: Keys) -> bytes:
    return keys.current if isinstance(keys, KeyRing) else keys


def _accepted_keys(keys: Keys) -> tuple[bytes, ...]:
    return keys.accepted if isinstance(keys, KeyRing) else (keys,)


def _hmac_hex(key: bytes, msg: bytes) -> str:
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def _signed_by_any(keys: Keys, msg: bytes, signature: str) -> bool:
    given = signature.encode()
    return any(hmac.compare_digest(_hmac_hex(k, msg).encode(), given) for k in _accepted_keys(keys))


WEBHOOK_TOLERANCE_S = 30 * 60  # ElevenLabs' reference check rejects older than 30 minutes


def _media_message(conversation_id: str, expires: int) -> bytes:
    return f"media:{conversation_id}:{expires}".encode()


def media_signature(keys: Keys, conversation_id: str, expires: int) -> str:
    """Signature carried by the media-socket URL talkgate hands out for one conversation."""
    return _hmac_hex(_signing_key(keys), _media_message(conversation_id, expires))


def verify_media_signature(
    keys: Keys, conversation_id: str, expires: int, signature: str, now: float
) -> None:
    if not _signed_by_any(keys, _media_message(conversation_id, expires), signature):
        raise AuthError("media stream signature does not match its conversation id")
    if now > expires:
        raise AuthError("media stream URL has expired")


def _audio_message(user_id: str, conversation_id: str, expires: int) -> bytes:
    return f"audio:{user_id}:{conversation_id}:{expires}".encode()


def audio_signature(keys: Keys, user_id: str, conversation_id: str, expires: int) -> str:
    """Signature of a playback link: one user's recording of one call, until ``expires``."""
    return _hmac_hex(_signing_key(keys), _audio_message(user_id, conversation_id, expires))


def verify_audio_signature(
    keys: Keys, user_id: str, conversation_id: str, expires: int, signature: str, now: float
) -> None:
    if not _signed_by_any(keys, _audio_message(user_id, conversation_id, expires), signature):
        raise AuthError("playback link signature does not match")
    if now > expires:
        raise AuthError("playback link has expired")


def webhook_signature_header(secret: bytes, body: bytes, timestamp: int) -> str:
    """``ElevenLabs-Signature: t=<unix>,v0=<hex HMAC-SHA256(secret, "t.body")>``."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v0={mac}"


@dataclass(frozen=True, slots=True)
class SignatureHeader:
    timestamp: int
    mac: str


def parse_signature(header: str | None, now: float) -> SignatureHeader:
    """``ElevenLabs-Signature: t=<unix>,v0=<hex>``, its timestamp within the tolerance of ``now``:
    checked before the body it signs is read."""
    if not header:
        raise AuthError("missing ElevenLabs-Signature header")
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
        mac = parts["v0"]
    except (KeyError, ValueError) as exc:
        raise AuthError("malformed ElevenLabs-Signature header") from exc
    if abs(now - timestamp) > WEBHOOK_TOLERANCE_S:
        raise AuthError("webhook signature timestamp is outside the 30-minute tolerance")
    return SignatureHeader(timestamp, mac)


def verify_webhook_signature(secret: bytes, body: bytes, header: str | None, now: float) -> None:
    signature = parse_signature(header, now)
    expected = webhook_signature_header(secret, body, signature.timestamp).split("v0=", 1)[1]
    if not hmac.compare_digest(expected, signature.mac):
        raise AuthError("webhook signature does not match")
