"""talkgate: a self-hosted gateway between apps and real-time voice agents."""

__version__ = "0.1.0"
