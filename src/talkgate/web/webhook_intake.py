"""The provider's post-call webhook, taken in without letting an unsigned request cost memory.

The route is public, so whoever finds it can post to it. In order of cost:

1. the ``ElevenLabs-Signature`` header is parsed and its timestamp checked against the tolerance
   before a byte of the body is read (a missing, malformed or stale header: 401 at once);
2. a declared ``Content-Length`` over ``TALKGATE_MAX_WEBHOOK_BYTES`` is refused at once (413);
3. at most ``TALKGATE_WEBHOOK_CONCURRENCY`` bodies per process, and
   ``TALKGATE_WEBHOOK_CONCURRENCY_PER_PEER`` per client address, are received before they are
   verified; another is refused at once with 503 ``webhook_busy`` and ``Retry-After``;
4. the body is streamed into a spooled temporary file (``SPOOL_IN_MEMORY`` in memory, the rest on
   disk in the spool folder) while its HMAC is computed, and cut off past the cap (413), or when,
   after ``TALKGATE_WEBHOOK_RATE_GRACE_S``, it has come at less than
   ``TALKGATE_WEBHOOK_MIN_RATE_KIB_S`` on average (408 ``request_too_slow``): an idle or trickling
   sender cannot hold its slot;
5. only a body whose HMAC matches is read back, checked for JSON nesting, and handed to the route.

A verified body comes from the provider and is at most the cap, so it is returned as bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, NoReturn

from fastapi import Request

from talkgate.errors import AuthError, ErrorCode, ProtocolError, TalkgateError
from talkgate.protocol.signing import parse_signature
from talkgate.settings import Settings
from talkgate.web.limits import json_too_deep, too_deep_message

SPOOL_IN_MEMORY = 1024 * 1024  # a body's bytes held in memory before it goes to a file
WRITE_BATCH = 256 * 1024  # the body is written to its file in batches of this, from a worker thread
# A slot is held until the body is in: a client that trickles its body would otherwise keep it.
READ_TIMEOUT_S = 300.0


def _busy(message: str) -> NoReturn:
    raise TalkgateError(message, code=ErrorCode.WEBHOOK_BUSY)


class IntakeSlots:
    """Webhook bodies being received and not yet verified, in this process: in all, and by peer
    (client address), so that one peer cannot take every slot."""

    def __init__(self, limit: int, per_peer: int = 1) -> None:
        self.limit = limit
        self.per_peer = per_peer
        self.in_use = 0
        self.by_peer: dict[str, int] = {}

    @contextmanager
    def take(self, peer: str) -> Iterator[None]:
        if self.in_use >= self.limit:
            _busy(f"{self.limit} webhook bodies are being received already; try again shortly")
        if self.by_peer.get(peer, 0) >= self.per_peer:
            _busy(
                f"this address is sending webhook bodies already (at most {self.per_peer} at a time); "
                "try again shortly"
            )
        self.in_use += 1
        self.by_peer[peer] = self.by_peer.get(peer, 0) + 1
        try:
            yield
        finally:
            self.in_use -= 1
            self.by_peer[peer] -= 1
            if not self.by_peer[peer]:
                del self.by_peer[peer]


def intake_slots(request: Request, settings: Settings) -> IntakeSlots:
    """The app's slots, made on first use (one event loop per app: no lock needed)."""
    state = request.app.state
    slots: IntakeSlots | None = getattr(state, "webhook_intake_slots", None)
    if slots is None:
        slots = IntakeSlots(settings.webhook_concurrency, settings.webhook_concurrency_per_peer)
        state.webhook_intake_slots = slots
    return slots


@dataclass(frozen=True, slots=True)
class MinimumRate:
    """A body must average ``bytes_per_s`` once ``grace_s`` have passed since ``start``."""

    start: float
    bytes_per_s: float
    grace_s: float

    def deadline(self, seen: int) -> float:
        """When ``seen`` bytes stop being enough: the next bytes must be in by then. Pure."""
        return self.start + max(self.grace_s, seen / self.bytes_per_s)


def _too_slow(rate: MinimumRate) -> ProtocolError:
    return ProtocolError(
        f"webhook body arriving at less than {rate.bytes_per_s / 1024:g} KiB/s "
        "(TALKGATE_WEBHOOK_MIN_RATE_KIB_S)",
        code=ErrorCode.REQUEST_TOO_SLOW,
    )


async def _paced(request: Request, rate: MinimumRate) -> AsyncIterator[bytes]:
    """The body's parts, each in before the rate's deadline for what came before it."""
    loop = asyncio.get_running_loop()
    parts = request.stream().__aiter__()
    seen = 0
    while True:
        deadline = rate.deadline(seen)
        try:
            async with asyncio.timeout_at(deadline):
                part = await anext(parts)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise _too_slow(rate) from None
        seen += len(part)
        if loop.time() > rate.deadline(seen):  # in, but already buffered: no wait timed out
            raise _too_slow(rate)
        yield part


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
        rate = MinimumRate(
            asyncio.get_running_loop().time(),
            settings.webhook_min_rate_kib_s * 1024,
            settings.webhook_rate_grace_s,
        )
        async for part in _paced(request, rate):
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
    peer = request.client.host if request.client else "unknown"
    with intake_slots(request, settings).take(peer):
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                spool = await _spool_body(request, mac, limit, settings)
        except TimeoutError:
            raise ProtocolError(
                f"webhook body not received within {READ_TIMEOUT_S:.0f} s", code=ErrorCode.REQUEST_TOO_SLOW
            ) from None
    with spool:
        if not hmac.compare_digest(mac.hexdigest(), signature.mac):
            raise AuthError("webhook signature does not match")
        body = await asyncio.to_thread(spool.read)
    if json_too_deep(body, settings.max_json_depth):  # signed, but parsed next: no RecursionError
        raise ProtocolError(too_deep_message(settings.max_json_depth))
    return body
