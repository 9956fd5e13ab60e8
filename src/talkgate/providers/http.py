"""One REST request to a provider, its transport failures turned into talkgate errors (each
adapter reads the HTTP status itself: the providers' error bodies differ)."""

from __future__ import annotations

from typing import Any

import httpx

from talkgate.errors import ErrorCode, ProviderError


class RestProvider:
    """A provider's REST API: the shared client, its base URL, the secret key, a timeout."""

    def __init__(
        self, http: httpx.AsyncClient, base_url: str, api_key: str, *, timeout: float = 10.0
    ) -> None:
        self._http = http
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout


async def request(
    http: httpx.AsyncClient, provider: str, method: str, url: str, what: str, **kwargs: Any
) -> httpx.Response:
    try:
        return await http.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise ProviderError(f"{provider} timed out while {what}", code=ErrorCode.PROVIDER_TIMEOUT) from exc
    except httpx.HTTPError as exc:
        raise ProviderError(
            f"{provider} is unreachable while {what}: {type(exc).__name__}",
            code=ErrorCode.PROVIDER_UNREACHABLE,
        ) from exc
