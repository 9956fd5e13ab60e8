"""Shared fixtures: real servers on 127.0.0.1, port 0."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Callable, Iterator

import pytest

from talkgate.serving import ServerThread
from talkgate.simulator import SimulatorConfig, create_simulator_app
from talkgate.simulator.agent import AgentConfig

# One timing constant, scaled for slow machines (TALKGATE_TEST_SLOWDOWN=3 on a loaded CI box).
SLOWDOWN = float(os.environ.get("TALKGATE_TEST_SLOWDOWN", "1"))
TIMEOUT = 10.0 * SLOWDOWN
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

SIM_KEY = "sim-test-key"
AGENT_ID = "agent_test"


async def wait_until(condition: Callable[[], bool]) -> None:
    """Poll a condition another thread or process makes true, for at most TIMEOUT."""
    async with asyncio.timeout(TIMEOUT):
        while not condition():  # noqa: ASYNC110 - what is watched has no event to await
            await asyncio.sleep(0.005)


def start_simulator(**overrides: object) -> ServerThread:
    agent_fields = {k: overrides.pop(k) for k in list(overrides) if k in AgentConfig.__dataclass_fields__}
    config = SimulatorConfig(api_key=SIM_KEY, agent=AgentConfig(**agent_fields), **overrides)  # type: ignore[arg-type]
    return ServerThread(create_simulator_app(config)).start()


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


S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "talkgate-test-access-key",
    "AWS_SECRET_ACCESS_KEY": "talkgate-test-secret-key-0123456789",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto_server as a real S3-compatible HTTP endpoint, one process for the test run."""
    import shutil
    import subprocess
    import sys
    import time

    import httpx

    from talkgate.serving import bind

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    beside = os.path.join(os.path.dirname(sys.executable), "moto_server")
    exe = beside if os.path.exists(beside) else shutil.which("moto_server") or "moto_server"
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + TIMEOUT * 3
    while True:
        assert proc.poll() is None, "moto_server exited"
        try:
            httpx.get(f"{url}/moto-api/", timeout=1)
            break
        except httpx.TransportError:
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.05)  # readiness poll of a process we just started
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
