"""The conversation routes: a signed URL for direct calls, and starting and ending sessions.

Every route needs ``Authorization: Bearer <JWT>``; a user reaches only their own rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from talkgate import metrics
from talkgate.auth import Principal
from talkgate.calls.runtime import Runtime
from talkgate.errors import DatabaseUnavailable, ErrorCode, ProtocolError, TalkgateError, error_body
from talkgate.persistence.models import Cap, ConversationSession
from talkgate.web.limits import json_nesting

SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"
MAX_METADATA_DEPTH = 8  # levels of objects and arrays in a session's metadata, itself one

STATUS_FOR_CODE = {
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.TOKEN_BAD_SIGNATURE: 401,
    ErrorCode.TOKEN_MALFORMED: 401,
    ErrorCode.WRONG_USER: 403,
    ErrorCode.FIELD_TOO_LARGE: 413,
    ErrorCode.MESSAGE_TOO_LARGE: 413,
    ErrorCode.TOO_MANY_ATTACHMENTS: 413,
    ErrorCode.TOO_MANY_SOCKETS: 429,
    ErrorCode.TOO_MANY_CONVERSATIONS: 429,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.CONFLICT: 409,
    ErrorCode.UNKNOWN_VOICE: 422,
    ErrorCode.PROVIDER_AUTH: 502,
    ErrorCode.PROVIDER_UNREACHABLE: 502,
    ErrorCode.PROVIDER_ERROR: 502,
    ErrorCode.PROVIDER_TIMEOUT: 504,
    ErrorCode.STORAGE_ERROR: 503,
    ErrorCode.DATABASE_UNAVAILABLE: 503,
    ErrorCode.NOT_CONFIGURED: 404,  # a feature this server does not offer: nothing there to reach
    ErrorCode.REQUEST_TOO_LARGE: 413,
    ErrorCode.REQUEST_TOO_SLOW: 408,
    ErrorCode.METADATA_TOO_LARGE: 413,
    ErrorCode.TOO_MUCH_AUDIO: 413,
    ErrorCode.TOO_MANY_SESSIONS: 429,
    ErrorCode.TOO_MANY_CALLS: 429,
    ErrorCode.CALL_ENDED: 409,
    ErrorCode.WEBHOOK_BUSY: 503,
    ErrorCode.SPOOL_FULL: 507,
}

# Refusals that say when to try again (seconds): the condition passes by itself.
RETRY_AFTER_FOR_CODE = {ErrorCode.WEBHOOK_BUSY: 5, ErrorCode.SPOOL_FULL: 60}


DB_AWAY = DatabaseUnavailable("the database is unavailable; try again shortly")


def error_response(exc: TalkgateError, status: int | None = None) -> JSONResponse:
    metrics.ERRORS.labels(exc.code.value).inc()
    status = status or STATUS_FOR_CODE.get(exc.code, 400 if isinstance(exc, ProtocolError) else 500)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if exc.code in RETRY_AFTER_FOR_CODE:
        headers = {"Retry-After": str(RETRY_AFTER_FOR_CODE[exc.code])}
    return JSONResponse(exc.body(), status_code=status, headers=headers)


# Starlette's and FastAPI's own refusals (no such route, another method, a body that cannot be read).
CODE_FOR_HTTP_STATUS = {
    400: ErrorCode.BAD_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.REQUEST_TOO_LARGE,
}
MAX_ERRORS_NAMED = 3  # validation errors named in one message; the rest are counted
MAX_ECHO = 40  # characters of a field's name (a body's free-form key) that a refusal repeats
# pydantic's own sentences ("Input should be less than or equal to 4096") run past MAX_ECHO; cut
# there they lost the bound itself, so a message has room for them and is cut only between words.
MAX_MESSAGE = 120


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ECHO else text[: MAX_ECHO - 1] + "…"


def _clip_words(text: str, limit: int = MAX_MESSAGE) -> str:
    """text, or its first whole words within limit and "…". Pure."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    # One very long word (an echoed value) is cut where it must be, not dropped whole.
    return (cut[:space] if space > limit // 2 else cut) + "…"


def validation_message(errors: Sequence[Any]) -> str:
    """The fields a request got wrong, and how, in a line that never repeats the input (a field's
    name, in a body's free-form keys, is cut short). Pure."""
    named = []
    for error in errors[:MAX_ERRORS_NAMED]:
        where = ".".join(_clip(str(part)) for part in error.get("loc", ()))
        named.append(f"{where}: {_clip_words(str(error.get('msg', 'invalid')))}")
    more = len(errors) - MAX_ERRORS_NAMED
    return "invalid request: " + "; ".join(named) + (f" (and {more} more)" if more > 0 else "")


def invalid_response(exc: RequestValidationError) -> JSONResponse:
    return error_response(ProtocolError(validation_message(exc.errors())), status=422)


def http_error_response(exc: HTTPException) -> JSONResponse:
    default = ErrorCode.BAD_REQUEST if exc.status_code < 500 else ErrorCode.INTERNAL
    code = CODE_FOR_HTTP_STATUS.get(exc.status_code, default)
    metrics.ERRORS.labels(code.value).inc()
    message = _clip_words(str(exc.detail)) if isinstance(exc.detail, str) else code.value.replace("_", " ")
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


# Declared as an OpenAPI security scheme (the Authorize button of /docs); a missing or malformed header
# is talkgate's own 401, not FastAPI's 403.
BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="The user's JWT: from your identity provider, or `talkgate token` in development.",
)


async def principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]
) -> Principal:
    return await runtime(request).authenticate(credentials.credentials if credentials else None)


User = Annotated[Principal, Depends(principal)]
Rt = Annotated[Runtime, Depends(runtime)]


class StartSession(BaseModel):
    sessionId: str | None = Field(None, pattern=SESSION_ID_PATTERN)
    agentId: str | None = Field(None, max_length=128)
    metadata: dict[str, Any] | None = None


class EndSession(BaseModel):
    sessionId: str = Field(pattern=SESSION_ID_PATTERN)


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC; SQLite hands back naive datetimes, which talkgate always wrote as UTC."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def session_json(row: ConversationSession) -> dict[str, Any]:
    return {
        "id": row.id,
        "userId": row.user_id,
        "sessionId": row.session_id,
        "status": row.status,
        "metadata": row.metadata_,
        "startedAt": iso(row.started_at),
        "endedAt": iso(row.ended_at),
        "createdAt": iso(row.created_at),
        "updatedAt": iso(row.updated_at),
    }


def active_since(window_hours: float) -> datetime:
    """Sessions and calls still "active" that began before this are not counted against a user's
    cap: their page went away without ending them."""
    return datetime.now(UTC) - timedelta(hours=window_hours)


def check_metadata(metadata: dict[str, Any], max_bytes: int) -> None:
    """A session's metadata is stored and handed back with every read of it: bounded in size and
    nesting."""
    serialized = json.dumps(metadata, separators=(",", ":")).encode()
    if len(serialized) > max_bytes:
        raise ProtocolError(
            f"metadata is {len(serialized)} bytes as JSON; at most {max_bytes} (TALKGATE_MAX_METADATA_BYTES)",
            code=ErrorCode.METADATA_TOO_LARGE,
        )
    if json_nesting(serialized) > MAX_METADATA_DEPTH:
        raise ProtocolError(
            f"metadata nests deeper than {MAX_METADATA_DEPTH} levels", code=ErrorCode.METADATA_TOO_LARGE
        )


class SignedIn(BaseModel):
    """Who a token signs in, and until when."""

    userId: str
    expiresAt: int | None = Field(description="the token's `exp`, Unix seconds")


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get("/api/me", tags=["identity"])
    async def me(user: User) -> SignedIn:
        """Checks a token: a sign-in form asks this first, so that a refused token is explained
        (expired, not signed by this server's key, not a JWT) before anything else is tried."""
        exp = user.claims.get("exp")
        return SignedIn(userId=user.user_id, expiresAt=exp if isinstance(exp, int) else None)

    @router.get("/conversation/signed-url", tags=["conversation"])
    async def signed_url(
        user: User, rt: Rt, voice: Annotated[str | None, Query(max_length=32)] = None
    ) -> Any:
        """A fresh provider signed URL for the voice's agent (direct calls); the key stays here."""
        agent_id = rt.settings.agent_id_for(voice)
        if rt.settings.elevenlabs_public_agents:
            return {"signedUrl": rt.elevenlabs.public_url(agent_id), "agentId": agent_id}
        return {"signedUrl": await rt.elevenlabs.signed_url(agent_id), "agentId": agent_id}

    @router.post("/conversation/start-session", tags=["conversation"])
    async def start_session(body: StartSession, user: User, rt: Rt) -> Any:
        """A new session (the same ``sessionId`` again: the same session). A user has at most
        ``TALKGATE_MAX_ACTIVE_SESSIONS_PER_USER`` active ones at a time."""
        metadata = dict(body.metadata or {})
        if body.agentId:
            metadata["agentId"] = body.agentId
        check_metadata(metadata, rt.settings.max_metadata_bytes)
        cap = Cap(rt.settings.max_active_sessions_per_user, active_since(rt.settings.active_window_hours))
        row = await rt.repo.start_session(user.user_id, body.sessionId, metadata or None, cap=cap)
        return session_json(row)

    @router.post("/conversation/end-session", tags=["conversation"])
    async def end_session(body: EndSession, user: User, rt: Rt) -> Any:
        """Marks the session ``ended`` and sets ``endedAt``; calling it again changes nothing."""
        return session_json(await rt.repo.end_session(user.user_id, body.sessionId))

    return router


def install(api: Any) -> None:
    api.include_router(build_router())
    # Starlette looks handlers up along the exception's MRO, so the base class covers the tree.
    api.add_exception_handler(TalkgateError, lambda _req, exc: error_response(exc))
    # The database away (restart, fail-over): a 503 that says so, not a bare 500.
    api.add_exception_handler(OperationalError, lambda _req, _exc: error_response(DB_AWAY))
    # FastAPI's and Starlette's refusals in talkgate's one error body, not their {"detail": …}.
    api.add_exception_handler(RequestValidationError, lambda _req, exc: invalid_response(exc))
    api.add_exception_handler(HTTPException, lambda _req, exc: http_error_response(exc))
