"""What opening a provider socket needs that does not change between conversations, worked out once.

``websockets.connect`` otherwise works it out on every call, on the conversation start's path:
with ``ssl=True`` asyncio builds a new TLS context (the system's CA bundle parsed again, several
milliseconds of CPU), and with ``proxy=True`` it reads every environment variable twice
(``urllib.request.getproxies`` and ``proxy_bypass``). The process's environment is fixed while it
serves, so a host's proxy is looked up once; the TLS context, shared, also lets TLS sessions be
reused.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

from websockets.proxy import get_proxy
from websockets.uri import parse_uri


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


@functools.lru_cache(maxsize=32)
def _proxy(secure: bool, host: str, port: int) -> str | None:
    return get_proxy(parse_uri(f"{'wss' if secure else 'ws'}://{host}:{port}/"))


def connect_options(url: str) -> dict[str, Any]:
    """``websockets.connect`` keyword arguments for ``url``: its proxy (or none) and TLS context."""
    uri = parse_uri(url)
    options: dict[str, Any] = {"proxy": _proxy(uri.secure, uri.host, uri.port)}
    if uri.secure:
        options["ssl"] = _tls()
    return options
