"""A cap on request bodies, before any route reads them: a declared ``Content-Length`` over the
cap is refused at once, and a chunked body is cut off when it passes it. Routes that take larger
bodies (the app's audio chunks, the provider's webhook) enforce their own caps instead.

JSON bodies are also refused when nested deeper than ``TALKGATE_MAX_JSON_DEPTH``, before any
parser sees them: ``json.loads`` recurses once per level, and 100 000 levels were a RecursionError
(a 500), or, at a depth just under the interpreter's limit, a parse that then broke the writing of
the same value to the database."""

from __future__ import annotations

import contextlib
import json
import logging
import re

import numpy as np
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from talkgate import logs, metrics
from talkgate.errors import ErrorCode, error_body

log = logging.getLogger("talkgate.http")

OWN_LIMITS = re.compile(r"^/api/(calls/[^/]+/chunks|elevenlabs/webhook)$")


class TooLarge(Exception):
    pass


# +1 for an opening bracket, -1 for a closing one, 0 for any other byte.
_NESTING_STEP = np.zeros(256, dtype=np.int8)
_NESTING_STEP[[ord("["), ord("{")]] = 1
_NESTING_STEP[[ord("]"), ord("}")]] = -1


def json_nesting(body: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (brackets inside strings do not
    count). Pure, and linear in the body's size whatever it holds: no regular expression (one
    for strings backtracks on an unterminated one) and no recursion."""
    data = np.frombuffer(body, dtype=np.uint8)
    if data.size == 0:
        return 0
    quote = data == ord('"')
    backslash = data == ord("\\")
    if backslash.any():  # a quote after an odd run of backslashes is part of its string
        position = np.arange(data.size, dtype=np.int32)
        last_other = np.maximum.accumulate(np.where(backslash, np.int32(-1), position))
        run_before = np.zeros(data.size, dtype=np.int32)
        run_before[1:] = position[:-1] - last_other[:-1]
        quote &= run_before % 2 == 0
    in_string = np.cumsum(quote, dtype=np.int32) % 2 == 1
    step = _NESTING_STEP[data]
    step[in_string] = 0
    return int(np.cumsum(step, dtype=np.int32).max(initial=0))


def json_too_deep(body: bytes, max_depth: int) -> bool:
    """Whether ``body`` nests deeper than ``max_depth``; most bodies have too few brackets to."""
    if body.count(b"[") + body.count(b"{") <= max_depth:
        return False
    return json_nesting(body) > max_depth


def too_deep_message(max_depth: int) -> str:
    return f"JSON nested too deeply: at most {max_depth} levels of arrays and objects"


def _is_json(scope: Scope) -> bool:
    """FastAPI parses a body as JSON when it says so, and when it says nothing."""
    content_type = dict(scope["headers"]).get(b"content-type")
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return bool(
        media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))
    )


async def send_error(send: Send, status: int, code: ErrorCode, message: str) -> None:
    metrics.ERRORS.labels(code.value).inc()
    data = json.dumps(error_body(code, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})


class JsonDepthLimit:
    """Reads a JSON body (``BodyLimit`` has capped it), refuses it if nested too deeply, else
    hands it on. The routes with caps of their own check their JSON themselves."""

    def __init__(self, app: ASGIApp, max_depth: int) -> None:
        self.app = app
        self.max_depth = max_depth

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or OWN_LIMITS.match(scope["path"]) or not _is_json(scope):
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: BodyLimit notes it
                raise ClientDisconnect
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if json_too_deep(bytes(body), self.max_depth):
            await send_error(send, 400, ErrorCode.BAD_REQUEST, too_deep_message(self.max_depth))
            return
        whole: Message = {"type": "http.request", "body": bytes(body), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def replayed() -> Message:
        return messages.pop(0) if messages else await receive()

    return replayed


def peer_of(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class BodyLimit:
    """Also the one place where a client that leaves before its body is in is noted: one short
    line, held to the per-peer log limit (``noise``), where there was a 74-line traceback."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, max_json_depth: int = 32, noise: logs.PeerNoise | None = None
    ) -> None:
        self.app = JsonDepthLimit(app, max_json_depth)
        self.max_bytes = max_bytes
        self.noise = noise or logs.PeerNoise(10)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._limited(scope, receive, send)
        except ClientDisconnect:
            peer = peer_of(scope)
            self.noise.line(
                log, peer, "peer %s left before its request body was in: %s", peer, scope["path"][:80]
            )

    async def _limited(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or OWN_LIMITS.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        refused = False

        async def limited_receive() -> Message:
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes and not refused:
                    # Answered here: a route reading its body would turn any error into a 400.
                    refused = True
                    await self._refuse(send)
                    raise TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if not refused:  # after the 413, the route's own answer goes nowhere
                await send(message)

        with contextlib.suppress(TooLarge):
            await self.app(scope, limited_receive, guarded_send)

    async def _refuse(self, send: Send) -> None:
        message = f"request body over the limit of {self.max_bytes} bytes"
        await send_error(send, 413, ErrorCode.REQUEST_TOO_LARGE, message)
