"""The web page: talkgate's own push-to-talk page and call-log page, their ES modules, and the npm
packages they import, all from talkgate's own origin (no CDN, nothing fetched elsewhere).

A built wheel carries those files in ``talkgate/static/vendor/`` (``setup.py`` copies them), and
they are served from there. In a checkout, ``node_modules`` is installed by ``make`` (``npm ci`` from
the lock file) next to ``pyproject.toml``; ``TALKGATE_NODE_MODULES`` points elsewhere. Only the files
the page imports are served.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse
from pydantic import BaseModel, Field
from starlette.staticfiles import StaticFiles

from talkgate.auth import TokenVerifier
from talkgate.errors import NotFoundError
from talkgate.settings import Environment, Settings
from talkgate.vendoring import PACKAGED_DIR, VENDOR_FILES

PACKAGE = Path(__file__).resolve().parent.parent
STATIC = PACKAGE / "static"
MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript", ".mjs": "text/javascript"}
NO_CACHE = {"cache-control": "no-cache"}


def node_modules() -> Path | None:
    configured = os.environ.get("TALKGATE_NODE_MODULES")
    if configured:
        return Path(configured)
    for parent in Path(__file__).resolve().parents:
        candidate = parent / "node_modules"
        if candidate.is_dir():
            return candidate
    return None


def vendor_file(name: str) -> Path | None:
    """The file served as ``/vendor/<name>``: the wheel's copy first, else the checkout's node_modules."""
    relative = VENDOR_FILES.get(name)
    if relative is None:
        return None
    packaged = PACKAGE / PACKAGED_DIR / name
    if packaged.is_file():
        return packaged
    root = node_modules()
    if root is not None and (root / relative).is_file():
        return root / relative
    return None


class DevSignIn(BaseModel):
    user: str = Field("local-user", pattern=r"^[A-Za-z0-9_.@-]{1,64}$")


def build_router(settings: Settings) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def page(name: str) -> FileResponse:
        return FileResponse(STATIC / name, media_type="text/html", headers=NO_CACHE)

    @router.get("/", response_class=HTMLResponse)
    async def index() -> Any:
        return page("index.html")

    @router.get("/calls", response_class=HTMLResponse)
    async def calls_page() -> Any:
        return page("calls.html")

    @router.get("/favicon.ico")
    async def favicon() -> Any:
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    @router.get("/vendor/{name}")
    async def vendor(name: str) -> Any:
        path = vendor_file(name)
        if path is None:
            raise NotFoundError(f"vendor file {name[:64]!r} is not installed (run make)")
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix])

    @router.get("/docs", response_class=HTMLResponse)
    async def docs() -> Any:
        """Swagger UI for /openapi.json, every file of it from talkgate's own origin (works offline)."""
        return page("docs.html")

    @router.get("/api/config")
    async def page_config() -> Any:
        """What the page needs before sign-in (public: nothing secret): whether the one-click
        development sign-in exists, and the push-to-talk dialect for direct mode."""
        return {
            "devSignIn": _dev_sign_in(settings),
            "simulator": settings.simulator_mode,
            "pttTurnEnd": settings.dialect.turn_end.value,
            "pttSilenceMs": settings.dialect.silence_ms,
            "mediaStreaming": settings.media_streaming_enabled,
            "avatar": settings.liveavatar_api_key is not None,
        }

    @router.post("/api/dev/token")
    async def dev_token(body: DevSignIn) -> Any:
        """One-click sign-in for a local user, only with the built-in simulator in development;
        a real deployment's app brings the JWT of its own identity provider."""
        if not _dev_sign_in(settings):
            raise NotFoundError("development sign-in is off")
        return {"token": TokenVerifier(settings).issue(body.user), "user": body.user}

    return router


def _dev_sign_in(settings: Settings) -> bool:
    # Never with a JWKS URL: users' tokens are then the identity provider's alone.
    return (
        settings.simulator_mode
        and settings.environment is Environment.DEVELOPMENT
        and settings.jwt_jwks_url is None
    )


def install(api: Any, settings: Settings) -> None:
    api.include_router(build_router(settings))
    api.mount("/static", StaticFiles(directory=STATIC), name="static")
