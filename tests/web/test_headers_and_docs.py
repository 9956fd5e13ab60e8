"""Security headers on pages, files and API answers; /docs from talkgate's own origin, with the bearer
scheme and the error bodies in the OpenAPI document."""

from __future__ import annotations

import re

import httpx
import pytest
from pydantic import ValidationError

from talkgate.settings import Settings
from talkgate.web.headers import websocket_origin
from tests.support.gate import PUBLIC


def directives(csp: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}


async def test_pages_files_and_api_answers_carry_the_security_headers(gate):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        answers = {
            path: await client.get(path)
            for path in ("/", "/calls", "/docs", "/static/js/app.js", "/vendor/swagger-ui.css", "/api/config")
        }
        answers["/api/calls (no token)"] = await client.get("/api/calls")
        answers["/openapi.json"] = await client.get("/openapi.json")
    assert answers["/api/calls (no token)"].status_code == 401
    for path, r in answers.items():
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "no-referrer", path  # signed links never leak in Referer
        csp = directives(r.headers["content-security-policy"])
        assert csp["frame-ancestors"] == ["'none'"] and csp["default-src"] == ["'self'"], path
        assert csp["script-src"] == ["'self'"] and csp["object-src"] == ["'none'"], path
        # The page talks to talkgate (HTTP and Socket.IO: 'self') and, in direct mode, to the
        # provider's socket; it plays audio from blobs and the microphone's stream.
        assert csp["connect-src"] == ["'self'", websocket_origin(gate.settings.elevenlabs_base_url)], path
        assert {"blob:", "mediastream:"} <= set(csp["media-src"]), path


def test_the_avatar_rooms_are_allowed_only_with_the_avatar_configured(tmp_path):
    from talkgate.web.headers import connect_sources

    base = {"_env_file": None, "data_dir": tmp_path}
    assert connect_sources(Settings(**base)) == ["'self'", "wss://api.elevenlabs.io"]  # type: ignore[arg-type]
    avatar = Settings(**base, liveavatar_api_key="la-key")  # type: ignore[arg-type]
    assert connect_sources(avatar) == [
        "'self'",
        "wss://api.elevenlabs.io",
        "wss://api.liveavatar.com",
        "wss://*.livekit.cloud",
        "https://*.livekit.cloud",
    ]
    extra = Settings(**base, TALKGATE_CSP_CONNECT_SRC="wss://rooms.example.com, https://rooms.example.com")  # type: ignore[arg-type]
    assert connect_sources(extra)[-2:] == ["wss://rooms.example.com", "https://rooms.example.com"]
    with pytest.raises(ValidationError, match="TALKGATE_CSP_CONNECT_SRC"):
        Settings(**base, TALKGATE_CSP_CONNECT_SRC="https://x.example; script-src *")  # type: ignore[arg-type]


async def test_docs_load_only_own_origin_assets(gate):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        page = await client.get("/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert "/vendor/swagger-ui-bundle.js" in assets and "/vendor/swagger-ui.css" in assets
        assert "<script>" not in page.text  # no inline script: the CSP allows none
        for asset in assets:
            assert asset.startswith("/") and not asset.startswith("//"), asset
            r = await client.get(asset)
            assert r.status_code == 200, asset
        css = await client.get("/vendor/swagger-ui.css")
        assert css.headers["content-type"].startswith("text/css")
        assert (await client.get("/redoc")).status_code == 404  # it would load from a CDN


async def test_the_openapi_document_declares_the_bearer_scheme_and_the_error_bodies(gate):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        spec = (await client.get("/openapi.json")).json()
    scheme = spec["components"]["securitySchemes"]["bearer"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer" and scheme["bearerFormat"] == "JWT"
    body = spec["components"]["schemas"]["ErrorBody"]
    assert body["required"] == ["error"]
    detail = spec["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message"}
    assert "unauthorized" in spec["components"]["schemas"]["ErrorCode"]["enum"]
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    secured = 0
    for path, operations in spec["paths"].items():
        for method, op in operations.items():
            if (method.upper(), path) in PUBLIC or path == "/api/elevenlabs/webhook":
                assert "security" not in op, path
                continue
            secured += 1
            assert op["security"] == [{"bearer": []}], (method, path)
            assert op["responses"]["401"]["content"]["application/json"]["schema"] == error_ref, path
            assert "503" in op["responses"], path
            if "{" in path:
                assert op["responses"]["404"]["content"]["application/json"]["schema"] == error_ref, path
            if op.get("parameters") or op.get("requestBody"):
                # Only talkgate's error body: validation errors no longer come as FastAPI's `detail`.
                assert op["responses"]["422"]["content"]["application/json"]["schema"] == error_ref
    assert secured >= 10
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    webhook = spec["paths"]["/api/elevenlabs/webhook"]["post"]["responses"]["401"]
    assert "ElevenLabs-Signature" in webhook["description"]


async def test_a_malformed_authorization_header_is_still_talkgates_401(gate):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        for header in ("Basic YWxpY2U6cHc=", "Bearer", "token abc", "Bearer\tx y"):
            r = await client.get("/api/calls", headers={"Authorization": header})
            assert r.status_code == 401, header
            assert r.json()["error"]["code"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
