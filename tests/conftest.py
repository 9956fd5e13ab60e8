"""Shared fixtures: real servers on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Iterator

import pytest

from talkgate.serving import ServerThread, bind
from tests.support.gate import Gate, start_gate
from tests.support.servers import IN_CI, S3_CREDENTIALS, start_simulator
from tests.support.timing import TIMEOUT, poll_until


@pytest.fixture
def simulator() -> Iterator[ServerThread]:
    server = start_simulator()
    yield server
    server.stop()


@pytest.fixture
def strict_simulator() -> Iterator[ServerThread]:
    server = start_simulator(strict=True)
    yield server
    server.stop()


@pytest.fixture
def ignoring_simulator() -> Iterator[ServerThread]:
    """A provider that silently ignores messages outside the published protocol."""
    server = start_simulator(ignore_unknown=True)
    yield server
    server.stop()


PG_ADMIN_DSN = os.environ.get("TALKGATE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg(statement: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped afterwards. Skipped where the machine
    has no PostgreSQL, except in CI, where a missing PostgreSQL is a failure."""
    name = f"talkgate_test_{secrets.token_hex(4)}"
    try:
        _pg(f'CREATE DATABASE "{name}"')
    except (OSError, ImportError) as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL at {PG_ADMIN_DSN} is required in CI: {exc}")
        pytest.skip(f"no PostgreSQL at {PG_ADMIN_DSN}: {exc}")
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    yield f"{base}/{name}"
    _pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


REDIS_URL = os.environ.get("TALKGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The machine's Redis; skipped where there is none, except in CI, where that is a failure."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} is required in CI: {exc}")
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")
    finally:
        client.close()
    return REDIS_URL


@pytest.fixture
def redis_channel() -> str:
    """A Socket.IO channel of this test's own, so that no other run's servers hear its events."""
    return f"talkgate-test-{secrets.token_hex(4)}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """Each persistence test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'talkgate.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto_server as a real S3-compatible HTTP endpoint, one process for the test run."""
    import shutil
    import subprocess
    import sys

    import httpx

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    beside = os.path.join(os.path.dirname(sys.executable), "moto_server")
    exe = beside if os.path.exists(beside) else shutil.which("moto_server") or "moto_server"
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert proc.poll() is None, "moto_server exited"
        try:
            httpx.get(f"{url}/moto-api/", timeout=1)
        except httpx.TransportError:
            return False
        return True

    poll_until(answers, TIMEOUT * 3, what="moto_server starting")
    yield url
    proc.terminate()
    proc.wait(timeout=TIMEOUT)


@pytest.fixture
def s3_bucket(s3_endpoint, monkeypatch) -> str:
    """A fresh bucket on the S3 endpoint; returns its name. Credentials are in the environment, where
    botocore's chain finds them, as in a deployment."""
    import boto3

    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    bucket = f"talkgate-{secrets.token_hex(4)}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture
def gate(tmp_path, simulator) -> Iterator[Gate]:
    g = start_gate(tmp_path, simulator)
    yield g
    g.server.stop()


class SocketInUnitTest(AssertionError):
    """A test marked ``unit`` opened a network socket: it belongs to a slower layer."""


@pytest.fixture(autouse=True)
def _unit_tests_open_no_sockets(request, monkeypatch) -> None:
    """The ``unit`` layer is pure code and fakes: a connect or bind there fails the test. (An event
    loop's own socketpair is neither.)"""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(sock: socket.socket, address: object, *_: object) -> None:
        raise SocketInUnitTest(f"a unit test used the network ({address!r}); mark it otherwise")

    for method in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, method, refuse)
