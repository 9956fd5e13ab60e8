"""The offline stand-in for ElevenLabs Agents and LiveAvatar (a product feature, not a test helper)."""

from talkgate.simulator.app import create_simulator_app
from talkgate.simulator.state import SimulatorConfig

__all__ = ["SimulatorConfig", "create_simulator_app"]
