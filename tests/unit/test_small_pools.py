"""Signed-URL requests spread over small httpx pools (talkgate.providers.http.SmallPools): never
more in flight on a client than its connections, the least busy client first, and a turn not had
in time is a provider timeout. httpx's mock transport: no sockets."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from talkgate.errors import ErrorCode, ProviderError
from talkgate.providers.http import SmallPools

pytestmark = [pytest.mark.unit, pytest.mark.timeout(5)]


class Provider:
    """Clients whose requests wait until ``answer`` is set; counts what each has in flight."""

    def __init__(self) -> None:
        self.limits: list[httpx.Limits] = []
        self.in_flight: list[int] = []
        self.peak: list[int] = []
        self.answer = asyncio.Event()
        self.changed = asyncio.Event()

    def make(self, limits: httpx.Limits) -> httpx.AsyncClient:
        index = len(self.limits)
        self.limits.append(limits)
        self.in_flight.append(0)
        self.peak.append(0)

        async def handler(request: httpx.Request) -> httpx.Response:
            self.in_flight[index] += 1
            self.peak[index] = max(self.peak[index], self.in_flight[index])
            self.changed.set()
            await self.answer.wait()
            self.in_flight[index] -= 1
            return httpx.Response(200, json={"client": index})

        return httpx.AsyncClient(transport=httpx.MockTransport(handler))

    async def until_in_flight(self, count: int) -> None:
        while sum(self.in_flight) < count:
            self.changed.clear()
            await self.changed.wait()


async def test_a_burst_fills_every_small_pool_evenly_and_the_rest_wait_their_turn() -> None:
    provider = Provider()
    pools = SmallPools(provider.make, shards=3, per_shard=2)
    assert [(lim.max_connections, lim.max_keepalive_connections) for lim in provider.limits] == [(2, 2)] * 3
    asked = [
        asyncio.ensure_future(pools.request("P", "GET", "http://p/signed", "signing", timeout=5))
        for _ in range(10)
    ]
    await provider.until_in_flight(6)
    await asyncio.sleep(0)  # the other four stay waiting here, not inside a pool
    assert provider.in_flight == [2, 2, 2] and not any(task.done() for task in asked)
    provider.answer.set()
    answers = await asyncio.gather(*asked)
    assert [a.status_code for a in answers] == [200] * 10
    assert provider.peak == [2, 2, 2]
    await pools.aclose()


async def test_requests_one_at_a_time_use_one_client_and_keep_its_connection() -> None:
    provider = Provider()
    provider.answer.set()
    pools = SmallPools(provider.make, shards=4, per_shard=8)
    for _ in range(5):
        answer = await pools.request("P", "GET", "http://p/signed", "signing", timeout=5)
        assert answer.json() == {"client": 0}
    await pools.aclose()


async def test_no_turn_within_the_timeout_is_a_provider_timeout() -> None:
    provider = Provider()
    pools = SmallPools(provider.make, shards=1, per_shard=1)
    first = asyncio.ensure_future(pools.request("P", "GET", "http://p/signed", "signing", timeout=5))
    await provider.until_in_flight(1)
    with pytest.raises(ProviderError) as late:
        await pools.request("P", "GET", "http://p/signed", "getting a signed URL", timeout=0.05)
    assert late.value.code is ErrorCode.PROVIDER_TIMEOUT
    assert late.value.message == "P timed out while getting a signed URL (every connection busy)"
    provider.answer.set()
    assert (await first).status_code == 200
    assert (await pools.request("P", "GET", "http://p/signed", "signing", timeout=5)).status_code == 200
    await pools.aclose()
