"""Shared fixtures: real servers on 127.0.0.1, port 0."""

from __future__ import annotations

import os
from collections.abc import Iterator

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
