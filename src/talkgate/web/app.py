"""The talkgate ASGI app: FastAPI routes and the Socket.IO server, built by ``create_app``."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import socketio
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

from talkgate import __version__, logs, metrics
from talkgate.auth import bearer
from talkgate.calls import idle
from talkgate.calls.runtime import Runtime
from talkgate.errors import ErrorCode, error_body
from talkgate.protocol.app_events import user_room
from talkgate.settings import Settings
from talkgate.web.api import install as install_api
from talkgate.web.avatar import build_router as avatar_router
from talkgate.web.calls import build_router as calls_router
from talkgate.web.headers import SecurityHeaders, security_headers
from talkgate.web.limits import BodyLimit
from talkgate.web.media import MEDIA_PATH, media_socket
from talkgate.web.openapi import document as document_errors
from talkgate.web.pages import install as install_pages
from talkgate.web.sio import create_sio

log = logging.getLogger("talkgate")

LOOPBACK = frozenset({"127.0.0.1", "::1"})


class TalkgateApp(socketio.ASGIApp):  # type: ignore[misc]
    """The ASGI entry point; ``api`` is the FastAPI app, ``sio`` the Socket.IO server."""

    api: FastAPI
    sio: socketio.AsyncServer

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.api.state.runtime
        return runtime


def create_app(settings: Settings) -> TalkgateApp:
    holder: dict[str, Runtime] = {}

    def get_runtime() -> Runtime:
        return holder["runtime"]

    sio = create_sio(get_runtime, settings)

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        async def notify(user_id: str, event: str, payload: dict[str, Any]) -> None:
            await sio.emit(event, payload, room=user_room(user_id))

        runtime = Runtime.build(settings, notify=notify)
        holder["runtime"] = runtime
        api.state.runtime = runtime
        await runtime.storage.check()
        await check_redis(settings.redis_url)
        recovered = await runtime.recordings.recover()
        if recovered:
            log.warning("recovered %d recording(s) left by a crash: %s", len(recovered), ", ".join(recovered))
        storing = asyncio.create_task(runtime.recordings.keep_storing())
        reaping = asyncio.create_task(idle.keep_reaping(runtime))
        try:
            yield
        finally:
            storing.cancel()
            reaping.cancel()
            await runtime.aclose()
            await sio.shutdown()

    # /docs is talkgate's own page (web/pages.py): Swagger UI from its own origin, under its CSP.
    api = FastAPI(title="talkgate", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None)
    api.state.settings = settings

    install_ops(api, settings)
    install_middleware(api, settings, sio.noise)
    install_api(api)
    install_pages(api, settings)
    api.include_router(calls_router())
    api.include_router(avatar_router())
    api.add_api_websocket_route(MEDIA_PATH, media_socket)
    document_errors(api)
    app = TalkgateApp(sio, other_asgi_app=api, socketio_path="socket.io")
    app.api = api
    app.sio = sio
    return app


def install_ops(api: FastAPI, settings: Settings) -> None:
    """Liveness and Prometheus metrics."""

    @api.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, Any]:
        """Liveness; public."""
        return {"status": "ok", "version": __version__, "simulator": settings.simulator_mode}

    @api.get("/metrics", tags=["ops"], include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus exposition: with TALKGATE_METRICS_TOKEN, for that bearer token only; without,
        for loopback clients only (uvicorn has already replaced a trusted proxy's address)."""
        token = settings.metrics_token
        if token is not None:
            given = bearer(request.headers.get("authorization")) or ""
            if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
                return JSONResponse(
                    error_body(ErrorCode.UNAUTHORIZED, "a valid metrics token is required"),
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        elif request.client is None or request.client.host not in LOOPBACK:
            return JSONResponse(
                error_body(ErrorCode.FORBIDDEN, "set TALKGATE_METRICS_TOKEN to scrape remotely"),
                status_code=403,
            )
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)


def install_middleware(api: FastAPI, settings: Settings, noise: logs.PeerNoise) -> None:
    """Request-body limits, security headers, and CORS for the origins allowed (none by default)."""
    api.add_middleware(
        BodyLimit,
        max_bytes=settings.max_request_bytes,
        max_json_depth=settings.max_json_depth,
        noise=noise,  # one log budget per peer, whether its noise comes over HTTP or Socket.IO
    )
    api.add_middleware(SecurityHeaders, headers=security_headers(settings))
    if (
        settings.cors_origins
    ):  # none by default: browsers may read talkgate's answers from its own origin only
        api.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Range"],
            expose_headers=["Content-Range", "Accept-Ranges", "Content-Length"],
            max_age=600,
        )


async def check_redis(url: str | None) -> None:
    """Fail at start, with the reason, rather than at the first cross-process event."""
    if url is None:
        return
    import redis.asyncio as redis

    client = redis.from_url(url)
    try:
        await client.ping()
    except (redis.RedisError, OSError) as exc:
        raise RuntimeError(f"TALKGATE_REDIS_URL: Redis does not answer: {exc}") from None
    finally:
        await client.aclose()


def create_media_app(main: TalkgateApp) -> Any:
    """The media-stream recording's option B: the media socket alone, on a port of its own
    (``TALKGATE_MEDIA_PORT``), sharing the main app's runtime; a reverse proxy routes
    ``/ws/elevenlabs-media`` to it."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute

    media = Starlette(routes=[WebSocketRoute(MEDIA_PATH, media_socket)])

    class _State:
        @property
        def runtime(self) -> Runtime:
            return main.runtime

    media.state = _State()  # type: ignore[assignment]
    return media
