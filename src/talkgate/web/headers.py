"""Security headers on every HTTP answer: a Content-Security-Policy that lets the pages load only from
talkgate's own origin and talk only to talkgate and the providers' sockets, no framing, no MIME
sniffing, no Referer (a signed playback link in a page's URL must not leak to another site)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from talkgate.settings import Settings

# A real LiveAvatar session's room is on LiveKit Cloud: its socket and its region lookup.
LIVEKIT_CLOUD = ("wss://*.livekit.cloud", "https://*.livekit.cloud")


def websocket_origin(http_url: str) -> str | None:
    """``https://host:port/path`` → ``wss://host:port``: where the page opens a provider's socket."""
    parts = urlsplit(http_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    return f"{scheme}://{parts.netloc}" if scheme and parts.netloc else None


def connect_sources(settings: Settings) -> list[str]:
    """'self' (the API and Socket.IO, whose ws:/wss: 'self' covers), the provider's conversation socket
    (direct mode), the avatar's room, and what the deployer adds."""
    sources = ["'self'"]
    providers = [settings.elevenlabs_base_url]
    if settings.liveavatar_api_key is not None:
        providers.append(settings.liveavatar_base_url)
    sources += [o for o in map(websocket_origin, providers) if o]
    if settings.liveavatar_api_key is not None and not settings.simulator_mode:
        sources += LIVEKIT_CLOUD
    sources += settings.csp_connect_src
    return list(dict.fromkeys(sources))


def content_security_policy(settings: Settings) -> str:
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "media-src": ["'self'", "blob:", "mediastream:"],
        "connect-src": connect_sources(settings),
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def security_headers(settings: Settings) -> dict[str, str]:
    return {
        "content-security-policy": content_security_policy(settings),
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",  # frame-ancestors for browsers without CSP 2
    }


class SecurityHeaders:
    """Adds ``headers`` to every HTTP response that does not set its own."""

    def __init__(self, app: ASGIApp, headers: dict[str, str]) -> None:
        self.app = app
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                _set_missing(MutableHeaders(scope=message), self.headers.items())
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _set_missing(headers: MutableHeaders, wanted: Iterable[tuple[str, str]]) -> None:
    for name, value in wanted:
        if name not in headers:
            headers[name] = value
