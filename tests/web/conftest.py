"""A real talkgate server (uvicorn on 127.0.0.1:0) in front of a real simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.gate import AppClient, connect


@pytest.fixture
async def app_client(gate) -> AsyncIterator[AppClient]:
    client = await connect(gate)
    yield client
    await client.sio.disconnect()
