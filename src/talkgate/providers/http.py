"""One REST request to a provider, its transport failures turned into talkgate errors (each
adapter reads the HTTP status itself: the providers' error bodies differ)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
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


class SmallPools:
    """Short requests spread over ``shards`` clients of at most ``per_shard`` connections each,
    each request on the client with the most free connections, never more in flight on one
    client than it has connections (the others wait their turn here, up to ``timeout``).

    Why not one client: httpcore's connection pool does, for every request it assigns and every
    one that ends, work in the square of its connections (a count of idle connections taken
    inside its loop over the connections) plus a readiness check of each idle socket. A burst of
    conversation starts kept 50-200 connections to the provider and paid milliseconds of CPU per
    signed URL in that bookkeeping alone; pools of 8 pay a small fraction of it, and 4 of them
    still carry 32 requests at once. Only the library's public API is used: small limits, and
    requests never queued inside a pool."""

    def __init__(
        self, make: Callable[[httpx.Limits], httpx.AsyncClient], *, shards: int = 4, per_shard: int = 8
    ) -> None:
        limits = httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard)
        self.clients = [make(limits) for _ in range(shards)]
        self._free = [per_shard] * shards
        self._admitted = asyncio.Semaphore(shards * per_shard)

    async def request(
        self,
        provider: str,
        method: str,
        url: str,
        what: str,
        *,
        timeout: float,  # noqa: ASYNC109 - also the request's own, as httpx takes it
        **kwargs: Any,
    ) -> httpx.Response:
        """``request`` on the least busy client; a turn not had within ``timeout`` is a timeout."""
        try:
            async with asyncio.timeout(timeout):
                await self._admitted.acquire()
        except TimeoutError:
            raise ProviderError(
                f"{provider} timed out while {what} (every connection busy)", code=ErrorCode.PROVIDER_TIMEOUT
            ) from None
        # Admitted: fewer requests are in flight than connections, so one client has one free.
        shard = max(range(len(self._free)), key=self._free.__getitem__)
        self._free[shard] -= 1
        try:
            return await request(self.clients[shard], provider, method, url, what, timeout=timeout, **kwargs)
        finally:
            self._free[shard] += 1
            self._admitted.release()

    async def aclose(self) -> None:
        for client in self.clients:
            await client.aclose()
