import pytest
from pydantic import ValidationError

from talkgate.errors import ErrorCode, ProtocolError
from talkgate.settings import Settings


def make(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg]


def test_defaults_are_the_documented_ones(monkeypatch):
    for name in ("ELEVENLABS_API_KEY", "TALKGATE_PORT", "TALKGATE_HOST"):
        monkeypatch.delenv(name, raising=False)
    s = make()
    assert (s.host, s.port, s.inactivity_timeout) == ("127.0.0.1", 8000, 180)
    assert s.elevenlabs_base_url == "https://api.elevenlabs.io"
    assert s.ptt_turn_end.value == "signal" and s.keepalive.value == "text"
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///")


@pytest.mark.parametrize("name", ["TALKGATE_PUBLIC_URL", "NEXT_PUBLIC_BACKEND_DOMAIN", "VERCEL_URL"])
def test_public_url_accepts_the_seed_names(monkeypatch, name):
    monkeypatch.setenv(name, "calls.example.com")
    assert make().effective_public_url == "https://calls.example.com"


def test_secrets_are_not_printed(monkeypatch):
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_live_123456789")
    s = make()
    assert "sk_live_123456789" not in repr(s) and "sk_live_123456789" not in str(s.model_dump())


def test_placeholder_secret_refused_in_production(monkeypatch):
    monkeypatch.setenv("TALKGATE_ENV", "production")
    monkeypatch.delenv("TALKGATE_JWT_SECRET", raising=False)
    with pytest.raises(ValidationError, match="placeholder"):
        make()
    monkeypatch.setenv("TALKGATE_JWT_SECRET", "a-real-long-random-secret-0123456789")
    monkeypatch.setenv("ELEVENLABS_API_KEY", "your_api_key")
    with pytest.raises(ValidationError, match="ELEVENLABS_API_KEY"):
        make()
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_real")
    assert make().environment.value == "production"


def test_voice_to_agent_mapping_of_seed_001(monkeypatch):
    monkeypatch.setenv("ELEVENLABS_AGENT_ID", "agent_base")
    monkeypatch.setenv("ELEVENLABS_AGENT_ID_FEMALE", "agent_f")
    s = make()
    assert s.agent_id_for(None) == "agent_base"
    assert s.agent_id_for("default") == "agent_base"
    assert s.agent_id_for("female") == "agent_f"
    assert s.agent_id_for("male") == "agent_base"
    with pytest.raises(ProtocolError) as err:
        s.agent_id_for("robot")
    assert err.value.code is ErrorCode.UNKNOWN_VOICE


def test_media_streaming_defaults_follow_simulator_mode():
    s = make()
    assert s.media_streaming_enabled is False
    assert s.model_copy(update={"simulator_mode": True}).media_streaming_enabled is True
    assert (
        make(TALKGATE_MEDIA_STREAMING="false")
        .model_copy(update={"simulator_mode": True})
        .media_streaming_enabled
        is False
    )


def test_short_jwt_secret_is_refused(monkeypatch):
    monkeypatch.setenv("TALKGATE_JWT_SECRET", "short")
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        make()
