"""The talkgate ASGI app: FastAPI routes and the Socket.IO server, built by ``create_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from talkgate import __version__
from talkgate.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(title="talkgate", version=__version__, lifespan=lifespan)
    app.state.settings = settings

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, object]:
        """Liveness; public."""
        return {"status": "ok", "version": __version__, "simulator": settings.simulator_mode}

    return app
