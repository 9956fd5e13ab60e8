"""The provider's post-call webhook, taken in without letting an unsigned request cost memory.

The route is public, so whoever finds it can post to it. In order of cost:

1. the ``ElevenLabs-Signature`` header is parsed and its timestamp checked against the tolerance
   before a byte of the body is read (a missing, malformed or stale header: 401 at once);
2. a declared ``Content-Length`` over ``TALKGATE_MAX_WEBHOOK_BYTES`` is refused at once (413);
3. at most ``TALKGATE_WEBHOOK_CONCURRENCY`` bodies per process are received before they are
   verified; another is refused at once with 503 ``webhook_busy`` and ``Retry-After``;
4. the body is streamed into a spooled temporary file (``SPOOL_IN_MEMORY`` in memory, the rest on
   disk in the spool folder) while its HMAC is computed, and cut off past the cap (413);
5. only a body whose HMAC matches is read back, checked for JSON nesting, and handed to the route.

A verified body comes from the provider and is at most the cap, so it is returned as bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from fastapi import Request

from talkgate.errors import AuthError, ErrorCode, ProtocolError, TalkgateError
from talkgate.protocol.signing import WEBHOOK_TOLERANCE_S
from talkgate.settings import Settings
from talkgate.web.limits import json_too_deep, too_deep_message

SPOOL_IN_MEMORY = 1024 * 1024  # a body's bytes held in memory before it goes to a file
WRITE_BATCH = 256 * 1024  # the body is written to its file in batches of this, from a worker thread
# A slot is held until the body is in: a client that trickles its body would otherwise keep it.
READ_TIMEOUT_S = 300.0


@dataclass(frozen=True, slots=True)
class SignatureHeader:
    timestamp: int
    mac: str


def parse_signature(header: str | None, now: float) -> SignatureHeader:
    """``t=<unix>,v0=<hex>``, its timestamp within the tolerance of ``now``. Pure."""
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


class IntakeSlots:
    """Webhook bodies being received and not yet verified, in this process."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_use = 0

    @contextmanager
    def take(self) -> Iterator[None]:
        if self.in_use >= self.limit:
            raise TalkgateError(
                f"{self.limit} webhook bodies are being received already; try again shortly",
                code=ErrorCode.WEBHOOK_BUSY,
            )
        self.in_use += 1
        try:
            yield
        finally:
            self.in_use -= 1


def intake_slots(request: Request, limit: int) -> IntakeSlots:
    """The app's slots, made on first use (one event loop per app: no lock needed)."""
    state = request.app.state
    slots: IntakeSlots | None = getattr(state, "webhook_intake_slots", None)
    if slots is None:
        slots = state.webhook_intake_slots = IntakeSlots(limit)
    return slots


def _too_large(limit: int) -> ProtocolError:
    return ProtocolError(
        f"webhook body over the limit of {limit} bytes (TALKGATE_MAX_WEBHOOK_BYTES)",
        code=ErrorCode.REQUEST_TOO_LARGE,
    )


async def _spool_body(request: Request, mac: Any, limit: int, settings: Settings) -> IO[bytes]:
    """The body in a spooled temporary file (rewound), fed to ``mac`` as it arrives."""
    settings.spool_dir.mkdir(parents=True, exist_ok=True)
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - handed to the caller
        max_size=SPOOL_IN_MEMORY, mode="w+b", dir=str(settings.spool_dir)
    )
    try:
        seen = 0
        batch = bytearray()
        async for part in request.stream():
            seen += len(part)
            if seen > limit:
                raise _too_large(limit)
            mac.update(part)
            batch += part
            if len(batch) >= WRITE_BATCH:
                await asyncio.to_thread(spool.write, bytes(batch))
                batch.clear()
        await asyncio.to_thread(spool.write, bytes(batch))
        spool.seek(0)
        return spool
    except BaseException:
        spool.close()
        raise


async def verified_webhook_body(request: Request, secret: bytes, settings: Settings) -> bytes:
    """The webhook's body once its signature is verified; raises AuthError, ProtocolError
    (``request_too_large``) or TalkgateError (``webhook_busy``) before that."""
    signature = parse_signature(request.headers.get("elevenlabs-signature"), time.time())
    limit = settings.max_webhook_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    mac = hmac.new(secret, f"{signature.timestamp}.".encode(), hashlib.sha256)
    with intake_slots(request, settings.webhook_concurrency).take():
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                spool = await _spool_body(request, mac, limit, settings)
        except TimeoutError:
            raise ProtocolError(f"webhook body not received within {READ_TIMEOUT_S:.0f} s") from None
    with spool:
        if not hmac.compare_digest(mac.hexdigest(), signature.mac):
            raise AuthError("webhook signature does not match")
        body = await asyncio.to_thread(spool.read)
    if json_too_deep(body, settings.max_json_depth):  # signed, but parsed next: no RecursionError
        raise ProtocolError(too_deep_message(settings.max_json_depth))
    return body
