"""The provider simulator the tests run against, and what the test servers share."""

from __future__ import annotations

import os

from talkgate.serving import ServerThread
from talkgate.simulator import SimulatorConfig, create_simulator_app
from talkgate.simulator.agent import AgentConfig

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


SIM_KEY = "sim-test-key"


AGENT_ID = "agent_test"


# The simulator's three behaviours towards messages outside ElevenLabs' published protocol, as
# AgentConfig fields: honour the signal dialect (default), close 1008 (strict), drop them silently.
BEHAVIOURS: dict[str, dict[str, bool]] = {
    "signal": {},
    "strict": {"strict": True},
    "ignore_unknown": {"ignore_unknown": True},
}


def start_simulator_behaving(behaviour: str, **overrides: object) -> ServerThread:
    """A simulator in one of ``BEHAVIOURS``."""
    return start_simulator(**BEHAVIOURS[behaviour], **overrides)


def start_simulator(**overrides: object) -> ServerThread:
    agent_fields = {k: overrides.pop(k) for k in list(overrides) if k in AgentConfig.__dataclass_fields__}
    config = SimulatorConfig(api_key=SIM_KEY, agent=AgentConfig(**agent_fields), **overrides)  # type: ignore[arg-type]
    return ServerThread(create_simulator_app(config)).start()


# The simulator's LiveAvatar API key in tests.
LIVEAVATAR_KEY = "sim-liveavatar-key"

S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "talkgate-test-access-key",
    "AWS_SECRET_ACCESS_KEY": "talkgate-test-secret-key-0123456789",
    "AWS_DEFAULT_REGION": "us-east-1",
}
