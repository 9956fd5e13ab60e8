import pytest
from pydantic import ValidationError

from talkgate.errors import ErrorCode, ProtocolError
from talkgate.protocol.dialect import Dialect, KeepAliveMode, TurnEndMode
from talkgate.settings import Settings

pytestmark = pytest.mark.unit


def make(**env: str) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[call-arg]


def test_defaults_are_the_documented_ones(monkeypatch):
    for name in ("ELEVENLABS_API_KEY", "TALKGATE_PORT", "TALKGATE_HOST"):
        monkeypatch.delenv(name, raising=False)
    s = make()
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.elevenlabs_base_url == "https://api.elevenlabs.io"
    # The dialect settings default to auto: no key, so the built-in simulator's signal dialect.
    assert (s.ptt_turn_end, s.keepalive, s.inactivity_timeout) == (None, None, None)
    assert s.dialect == Dialect(TurnEndMode.SIGNAL, KeepAliveMode.TEXT, 1500, 180)
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
    monkeypatch.setenv("TALKGATE_SIGNING_SECRET", "signing-secret-0123456789-abcdefghijklmnop")  # required
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


SIGNING = "signing-secret-0123456789-abcdefghijklmnop"
OLD_SIGNING = "retired-signing-secret-0123456789-abcdefgh"


def test_production_with_a_jwks_url_and_no_signing_secret_refuses_to_start(monkeypatch):
    # Users' JWTs verified by an identity provider's JWKS: the JWT secret stays the public development
    # placeholder, so nothing talkgate signs itself may be keyed by it.
    monkeypatch.setenv("TALKGATE_ENV", "production")
    monkeypatch.delenv("TALKGATE_JWT_SECRET", raising=False)
    monkeypatch.delenv("TALKGATE_SIGNING_SECRET", raising=False)
    monkeypatch.setenv("TALKGATE_JWT_JWKS_URL", "https://idp.example.com/.well-known/jwks.json")
    with pytest.raises(ValidationError, match="TALKGATE_SIGNING_SECRET is required in production"):
        make()
    monkeypatch.setenv("TALKGATE_SIGNING_SECRET", SIGNING)
    assert make().signing_secrets() == (SIGNING.encode(),)


@pytest.mark.parametrize("value", ["short", "talkgate-development-only-secret-change-me"])
def test_a_short_or_placeholder_signing_secret_is_refused(monkeypatch, value):
    monkeypatch.setenv("TALKGATE_SIGNING_SECRET", value)
    with pytest.raises(ValidationError, match="TALKGATE_SIGNING_SECRET"):
        make()
    monkeypatch.setenv("TALKGATE_SIGNING_SECRET", SIGNING)
    monkeypatch.setenv("TALKGATE_SIGNING_SECRET_PREVIOUS", value)
    with pytest.raises(ValidationError, match="TALKGATE_SIGNING_SECRET_PREVIOUS"):
        make()


def test_previous_signing_secrets_follow_the_current_one(monkeypatch):
    monkeypatch.setenv("TALKGATE_SIGNING_SECRET", SIGNING)
    monkeypatch.setenv("TALKGATE_SIGNING_SECRET_PREVIOUS", f"{OLD_SIGNING}, {OLD_SIGNING[::-1]}")
    s = make()
    assert s.signing_secrets() == (SIGNING.encode(), OLD_SIGNING.encode(), OLD_SIGNING[::-1].encode())
    assert SIGNING not in repr(s) and OLD_SIGNING not in repr(s)


def test_in_development_the_signing_secret_is_derived_from_the_jwt_secret_not_equal_to_it(monkeypatch):
    monkeypatch.delenv("TALKGATE_SIGNING_SECRET", raising=False)
    monkeypatch.delenv("TALKGATE_SIGNING_SECRET_PREVIOUS", raising=False)
    monkeypatch.setenv("TALKGATE_JWT_SECRET", "a-real-long-random-secret-0123456789")
    s = make()
    assert s.signing_secret_is_derived
    (derived,) = s.signing_secrets()
    assert len(derived) == 32 and derived != b"a-real-long-random-secret-0123456789"


def test_a_real_key_speaks_only_the_published_protocol_by_default(monkeypatch):
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_real_key_0123456789")
    for name in ("TALKGATE_PTT_TURN_END", "TALKGATE_KEEPALIVE", "TALKGATE_INACTIVITY_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    d = make().dialect
    assert (d.turn_end, d.keepalive, d.inactivity_timeout) == (
        TurnEndMode.SILENCE,
        KeepAliveMode.USER_ACTIVITY,
        0,
    )
    # The built-in simulator that serve starts without a key keeps the signal dialect.
    assert make().model_copy(update={"simulator_mode": True}).dialect.turn_end is TurnEndMode.SIGNAL


def test_dialect_settings_accept_auto_and_name_every_choice(monkeypatch):
    monkeypatch.setenv("ELEVENLABS_API_KEY", "sk_real_key_0123456789")
    monkeypatch.setenv("TALKGATE_PTT_TURN_END", "signal")
    monkeypatch.setenv("TALKGATE_KEEPALIVE", "AUTO")
    monkeypatch.setenv("TALKGATE_INACTIVITY_TIMEOUT", "auto")
    d = make().dialect
    assert (d.turn_end, d.keepalive, d.inactivity_timeout) == (
        TurnEndMode.SIGNAL,
        KeepAliveMode.USER_ACTIVITY,
        180,
    )
    monkeypatch.setenv("TALKGATE_PTT_TURN_END", "vad")
    with pytest.raises(ValidationError, match="expected one of auto, signal, silence"):
        make()
    monkeypatch.setenv("TALKGATE_PTT_TURN_END", "auto")
    monkeypatch.setenv("TALKGATE_INACTIVITY_TIMEOUT", "181")
    with pytest.raises(ValidationError, match="less than or equal to 180"):
        make()
