"""A cap on request bodies, before any route reads them: a declared ``Content-Length`` over the
cap is refused at once, and a chunked body is cut off when it passes it. Routes that take larger
bodies (the app's audio chunks, the provider's webhook) enforce their own caps instead."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from talkgate import metrics
from talkgate.errors import ErrorCode

OWN_LIMITS = re.compile(r"^/api/(calls/[^/]+/chunks|elevenlabs/webhook)$")


class TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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
        metrics.ERRORS.labels(ErrorCode.REQUEST_TOO_LARGE.value).inc()
        body: dict[str, Any] = {
            "error": {
                "code": ErrorCode.REQUEST_TOO_LARGE.value,
                "message": f"request body over the limit of {self.max_bytes} bytes",
            }
        }
        data = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": data})
