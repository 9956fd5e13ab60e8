"""LiveAvatar's REST API (seed 003): mint a FULL-mode push-to-talk session, start it, keep it alive,
stop it. ``X-API-KEY`` stays here; the page gets only the session's room URL and client token.

Responses are ``{code, data, message}``: success is read from the HTTP status and ``data`` (the
published spec and the official SDK disagree on the success ``code``; PROTOCOL.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from talkgate.errors import ErrorCode, NotFoundError, ProtocolError, ProviderError
from talkgate.protocol.liveavatar import END_REASONS, Envelope, token_request
from talkgate.providers.http import RestProvider, request


@dataclass(frozen=True, slots=True)
class AvatarToken:
    session_id: str
    session_token: str


@dataclass(frozen=True, slots=True)
class AvatarRoom:
    session_id: str
    livekit_url: str
    livekit_client_token: str
    max_session_duration: int | None


def _message(response: httpx.Response) -> str:
    """The provider's own words: the envelope's message, or FastAPI's 422 ``detail``."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("detail"), list):
        parts = []
        for item in body["detail"][:3]:
            if isinstance(item, dict):
                loc = ".".join(str(x) for x in item.get("loc", []) if x != "body")
                parts.append(f"{loc}: {item.get('msg', '')}".strip(": "))
        return "; ".join(parts)
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])[:200]
    return response.text[:200]


class LiveAvatarProvider(RestProvider):
    async def _call(
        self, path: str, what: str, body: dict[str, Any] | None, *, bearer: str | None = None
    ) -> Any:
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {"X-API-KEY": self._api_key}
        response = await request(
            self._http,
            "LiveAvatar",
            "POST",
            f"{self.base_url}{path}",
            what,
            json=body or {},
            headers=headers,
            timeout=self.timeout,
        )
        status = response.status_code
        if status in (401, 403):
            raise ProviderError(
                f"LiveAvatar refused the credentials while {what} (HTTP {status}: {_message(response)})",
                code=ErrorCode.PROVIDER_AUTH,
            )
        if status == 404:
            raise NotFoundError(f"LiveAvatar knows no such session ({_message(response)})")
        if status == 422:
            raise ProviderError(f"LiveAvatar rejected the request while {what}: {_message(response)}")
        if not 200 <= status < 300:
            raise ProviderError(f"LiveAvatar failed while {what}: HTTP {status} {_message(response)}")
        try:
            return Envelope.parse(response.content).data
        except ProtocolError as exc:
            raise ProviderError(f"LiveAvatar answered {what} with {exc.message}") from exc

    async def create_token(
        self,
        avatar_id: str,
        *,
        voice_id: str | None = None,
        context_id: str | None = None,
        language: str = "en",
        is_sandbox: bool = False,
    ) -> AvatarToken:
        body = token_request(
            avatar_id, voice_id=voice_id, context_id=context_id, language=language, is_sandbox=is_sandbox
        )
        data = await self._call("/v1/sessions/token", "creating a session token", body)
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), str) and data[k] for k in ("session_id", "session_token")
        ):
            raise ProviderError("LiveAvatar returned no session_id and session_token")
        return AvatarToken(data["session_id"], data["session_token"])

    async def start(self, token: AvatarToken) -> AvatarRoom:
        data = await self._call("/v1/sessions/start", "starting the session", {}, bearer=token.session_token)
        if not isinstance(data, dict) or not all(
            isinstance(data.get(k), str) and data[k] for k in ("livekit_url", "livekit_client_token")
        ):
            raise ProviderError("LiveAvatar returned no room for the session")
        duration = data.get("max_session_duration")
        return AvatarRoom(
            str(data.get("session_id") or token.session_id),
            data["livekit_url"],
            data["livekit_client_token"],
            duration if isinstance(duration, int) else None,
        )

    async def keep_alive(self, session_id: str) -> None:
        await self._call("/v1/sessions/keep-alive", "keeping the session alive", {"session_id": session_id})

    async def stop(self, session_id: str, reason: str = "USER_CLOSED") -> None:
        if reason not in END_REASONS:
            raise ProviderError(f"unknown end reason {reason!r}", code=ErrorCode.BAD_REQUEST)
        await self._call(
            "/v1/sessions/stop", "stopping the session", {"session_id": session_id, "reason": reason}
        )
