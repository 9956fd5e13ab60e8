"""HTTP routes of PROTOCOL.md §1.1 that exist so far: seed 004's conversation routes.

Every route needs ``Authorization: Bearer <JWT>``; a user reaches only their own rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError

from talkgate import metrics
from talkgate.auth import Principal, bearer
from talkgate.errors import DatabaseUnavailable, ErrorCode, ProtocolError, TalkgateError
from talkgate.persistence.models import ConversationSession
from talkgate.web.runtime import Runtime

SESSION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"

STATUS_FOR_CODE = {
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.WRONG_USER: 403,
    ErrorCode.FIELD_TOO_LARGE: 413,
    ErrorCode.MESSAGE_TOO_LARGE: 413,
    ErrorCode.TOO_MANY_ATTACHMENTS: 413,
    ErrorCode.TOO_MANY_SOCKETS: 429,
    ErrorCode.TOO_MANY_CONVERSATIONS: 429,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.UNKNOWN_VOICE: 422,
    ErrorCode.PROVIDER_AUTH: 502,
    ErrorCode.PROVIDER_UNREACHABLE: 502,
    ErrorCode.PROVIDER_ERROR: 502,
    ErrorCode.PROVIDER_TIMEOUT: 504,
    ErrorCode.STORAGE_ERROR: 503,
    ErrorCode.DATABASE_UNAVAILABLE: 503,
    ErrorCode.NOT_CONFIGURED: 404,  # a feature this server does not offer: nothing there to reach
}


DB_AWAY = DatabaseUnavailable("the database is unavailable; try again shortly")


def error_response(exc: TalkgateError) -> JSONResponse:
    metrics.ERRORS.labels(exc.code.value).inc()
    status = STATUS_FOR_CODE.get(exc.code, 400 if isinstance(exc, ProtocolError) else 500)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": exc.as_dict()}, status_code=status, headers=headers)


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


async def principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    return await runtime(request).authenticate(bearer(authorization))


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


def build_router() -> APIRouter:
    router = APIRouter()

    @router.get("/conversation/signed-url", tags=["conversation"])
    async def signed_url(
        user: User, rt: Rt, voice: Annotated[str | None, Query(max_length=32)] = None
    ) -> Any:
        """A fresh provider signed URL for the voice's agent (seed 004); the key stays here."""
        agent_id = rt.settings.agent_id_for(voice)
        if rt.settings.elevenlabs_public_agents:
            return {"signedUrl": rt.elevenlabs.public_url(agent_id), "agentId": agent_id}
        return {"signedUrl": await rt.elevenlabs.signed_url(agent_id), "agentId": agent_id}

    @router.post("/conversation/start-session", tags=["conversation"])
    async def start_session(body: StartSession, user: User, rt: Rt) -> Any:
        metadata = dict(body.metadata or {})
        if body.agentId:
            metadata["agentId"] = body.agentId
        row = await rt.repo.start_session(user.user_id, body.sessionId, metadata or None)
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
