"""A raw HTTP/1.1 client for hostile tests: it sends headers and as much of a body as it likes, and
reads the answer while the rest of the body is still owed (httpx sends the whole body first)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.support.timing import TIMEOUT


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RawRequest:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def answer(self) -> RawAnswer:
        async with asyncio.timeout(TIMEOUT):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)}
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return RawAnswer(status, headers, body)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def raw_post(
    url: str, headers: dict[str, str], first: bytes = b"", *, peer: str | None = None
) -> RawRequest:
    """A POST with ``headers`` (give Content-Length), of which only ``first`` is sent so far;
    ``peer``: the loopback address to send from (127.0.0.2, …), another client to the server."""
    parts = urlsplit(url)
    local = (peer, 0) if peer else None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port, local_addr=local)
    head = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    request = RawRequest(reader, writer)
    await request.send(("\r\n".join(head) + "\r\n\r\n").encode() + first)
    return request
