"""Simulator configuration, conversation records and the signed-URL scheme."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from talkgate.simulator.agent import AgentConfig

SIGNED_URL_TTL_S = 15 * 60  # ElevenLabs: a signed URL must be used within 15 minutes
MAX_FRAMES_KEPT = 100_000
MAX_RECORDING_BYTES = 16000 * 2 * 1800  # 30 minutes of 16 kHz PCM16 per conversation


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    api_key: str = "sim-key"
    agent: AgentConfig = field(default_factory=AgentConfig)
    public_agent_ids: frozenset[str] = frozenset()
    signed_url_ttl_s: float = SIGNED_URL_TTL_S
    webhook_url: str | None = None
    webhook_secret: str | None = None
    liveavatar_api_key: str = "sim-liveavatar-key"
    liveavatar_idle_timeout_s: float = 300.0  # LiveAvatar stops idle sessions after 5 minutes
    signing_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    # The account's agents (``GET /v1/convai/agents/{id}``) and LiveAvatar avatars, voices and
    # contexts; None: any id names one (the built-in simulator serves whatever is configured).
    agent_ids: frozenset[str] | None = None
    liveavatar_ids: frozenset[str] | None = None
    # A slow provider: each signed-URL answer, conversation-socket handshake and LiveAvatar token
    # answer waits this long.
    response_delay_s: float = 0.0
    # A network between the simulator and its clients (``--latency-ms``): added to every provider
    # REST round trip, every socket message either way, and what the simulator sends out itself
    # (media-stream frames, webhooks). See simulator/latency.py.
    latency_s: float = 0.0


@dataclass(slots=True)
class MediaConfig:
    websocket_url: str


@dataclass(slots=True)
class ConversationRecord:
    conversation_id: str
    agent_id: str
    started_at: float = field(default_factory=time.time)
    ended_at: float | None = None
    close_code: int | None = None
    close_reason: str | None = None
    frames: deque[Any] = field(default_factory=lambda: deque(maxlen=MAX_FRAMES_KEPT))
    transcript: list[dict[str, Any]] = field(default_factory=list)
    # Both sides in arrival order, PCM16 16 kHz mono: the source of the "provider recording".
    audio: bytearray = field(default_factory=bytearray)
    media: MediaConfig | None = None

    def add_audio(self, pcm: bytes) -> None:
        room = MAX_RECORDING_BYTES - len(self.audio)
        if room > 0:
            self.audio += pcm[:room]


def new_conversation_id() -> str:
    return "conv_" + secrets.token_hex(12)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_conversation(secret: bytes, agent_id: str, expires: float, conversation_id: str | None) -> str:
    payload = _b64(json.dumps({"a": agent_id, "e": int(expires), "c": conversation_id}).encode())
    mac = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{mac}"


class SignatureError(Exception):
    pass


def verify_conversation_signature(secret: bytes, token: str, agent_id: str, now: float) -> str | None:
    """Check a ``conversation_signature``; returns the conversation id it was made for, if any."""
    try:
        payload, mac = token.split(".", 1)
        expected = _b64(hmac.new(secret, payload.encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, mac):
            raise SignatureError("invalid conversation signature")
        claims = json.loads(_unb64(payload))
    except (ValueError, TypeError) as exc:
        raise SignatureError("malformed conversation signature") from exc
    if claims.get("a") != agent_id:
        raise SignatureError("conversation signature is for another agent")
    if now > claims.get("e", 0):
        raise SignatureError("signed URL has expired")
    cid = claims.get("c")
    return cid if isinstance(cid, str) else None


class Registry:
    """Every conversation the simulator has seen, for the frame log and after-call APIs."""

    def __init__(self) -> None:
        self.conversations: dict[str, ConversationRecord] = {}
        self.pending_media: dict[str, MediaConfig] = {}

    def create(self, agent_id: str, conversation_id: str | None = None) -> ConversationRecord:
        cid = conversation_id or new_conversation_id()
        record = ConversationRecord(cid, agent_id, media=self.pending_media.pop(cid, None))
        self.conversations[cid] = record
        return record
