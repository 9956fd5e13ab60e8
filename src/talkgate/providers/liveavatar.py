"""LiveAvatar's REST API (avatar mode): mint a FULL-mode push-to-talk session, start it, keep it alive,
stop it. ``X-API-KEY`` stays here; the page gets only the session's room URL and client token.

Responses are ``{code, data, message}``: success is read from the HTTP status and ``data`` (the
published spec and the official SDK disagree on the success ``code``; docs/protocol.md §4).
"""

from __future__ import annotations

from typing import Any

import httpx

from talkgate.errors import ErrorCode, NotFoundError, ProtocolError, ProviderError
from talkgate.protocol import liveavatar as wire
from talkgate.protocol.liveavatar import END_REASONS, AvatarRoom, AvatarToken, Envelope, token_request

__all__ = ["AvatarRoom", "AvatarToken", "LiveAvatarProvider"]
from talkgate.protocol.rest_errors import error_text
from talkgate.providers.http import RestProvider, request


def _message(response: httpx.Response) -> str:
    """The provider's own words: the envelope's message, or FastAPI's 422 ``detail``."""
    return error_text(response.content)


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

    async def resource(self, kind: wire.Resource, resource_id: str) -> wire.ResourceInfo:
        """An avatar, voice or context of the account; NotFoundError when it has none by that id."""
        what = f"reading {kind.value[:-1]} {resource_id}"
        response = await request(
            self._http,
            "LiveAvatar",
            "GET",
            f"{self.base_url}{wire.resource_path(kind, resource_id)}",
            what,
            headers={"X-API-KEY": self._api_key},
            timeout=self.timeout,
        )
        status = response.status_code
        if status in (401, 403):
            raise ProviderError(
                f"LiveAvatar refused the API key while {what} (HTTP {status}: {_message(response)})",
                code=ErrorCode.PROVIDER_AUTH,
            )
        if status in (404, 422):  # 422: not even a uuid
            raise NotFoundError(f"LiveAvatar has no {kind.value[:-1]} {resource_id!r} on this account")
        if not 200 <= status < 300:
            raise ProviderError(f"LiveAvatar failed while {what}: HTTP {status} {_message(response)}")
        try:
            return wire.ResourceInfo.parse(Envelope.parse(response.content).data)
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
        data = await self._call(wire.TOKEN_PATH, "creating a session token", body)
        try:
            return AvatarToken.parse(data)
        except ProtocolError:
            raise ProviderError("LiveAvatar returned no session_id and session_token") from None

    async def start(self, token: AvatarToken) -> AvatarRoom:
        data = await self._call(wire.START_PATH, "starting the session", {}, bearer=token.session_token)
        try:
            return AvatarRoom.parse(data, token.session_id)
        except ProtocolError:
            raise ProviderError("LiveAvatar returned no room for the session") from None

    async def keep_alive(self, session_id: str) -> None:
        await self._call(
            wire.KEEP_ALIVE_PATH, "keeping the session alive", wire.SessionRequest(session_id).build()
        )

    async def stop(self, session_id: str, reason: str = "USER_CLOSED") -> None:
        if reason not in END_REASONS:
            raise ProviderError(f"unknown end reason {reason!r}", code=ErrorCode.BAD_REQUEST)
        await self._call(
            wire.STOP_PATH, "stopping the session", wire.SessionRequest(session_id, reason).build()
        )
