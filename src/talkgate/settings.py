"""Configuration: the one place that reads the environment (and an optional ``.env`` file)."""

from __future__ import annotations

import hashlib
import hmac
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from talkgate.errors import ErrorCode, ProtocolError
from talkgate.protocol.dialect import AUTO, DEFAULT_SILENCE_MS, Dialect, KeepAliveMode, TurnEndMode, resolve

DEV_JWT_SECRET = "talkgate-development-only-secret-change-me"  # noqa: S105 - refused in production
PLACEHOLDER_SECRETS = frozenset({"", "changethis", "change-me", "secret", "your_api_key", DEV_JWT_SECRET})
MIN_JWT_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash
MIN_SIGNING_SECRET_BYTES = 32  # the HMAC-SHA256 keys of playback links and media-socket URLs
# Development only: the signing secret, when none is set, is derived from the JWT secret under this label.
DEV_SIGNING_LABEL = b"talkgate-development-signing-secret"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Voice(StrEnum):
    DEFAULT = "default"
    FEMALE = "female"
    MALE = "male"


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    environment: Environment = Field(Environment.DEVELOPMENT, validation_alias=_env("TALKGATE_ENV"))

    # --- ElevenLabs ---
    elevenlabs_api_key: SecretStr | None = Field(None, validation_alias=_env("ELEVENLABS_API_KEY"))
    elevenlabs_base_url: str = Field(
        "https://api.elevenlabs.io", validation_alias=_env("ELEVENLABS_BASE_URL")
    )
    elevenlabs_agent_id: str | None = Field(None, validation_alias=_env("ELEVENLABS_AGENT_ID"))
    elevenlabs_agent_id_default: str | None = Field(
        None, validation_alias=_env("ELEVENLABS_AGENT_ID_DEFAULT")
    )
    elevenlabs_agent_id_female: str | None = Field(None, validation_alias=_env("ELEVENLABS_AGENT_ID_FEMALE"))
    elevenlabs_agent_id_male: str | None = Field(None, validation_alias=_env("ELEVENLABS_AGENT_ID_MALE"))
    elevenlabs_public_agents: bool = Field(False, validation_alias=_env("ELEVENLABS_PUBLIC_AGENTS"))
    elevenlabs_webhook_secret: SecretStr | None = Field(
        None, validation_alias=_env("ELEVENLABS_WEBHOOK_SECRET")
    )

    # --- LiveAvatar ---
    liveavatar_api_key: SecretStr | None = Field(None, validation_alias=_env("LIVEAVATAR_API_KEY"))
    liveavatar_base_url: str = Field(
        "https://api.liveavatar.com", validation_alias=_env("LIVEAVATAR_BASE_URL")
    )
    liveavatar_avatar_id: str | None = Field(None, validation_alias=_env("LIVEAVATAR_AVATAR_ID"))
    liveavatar_voice_id: str | None = Field(None, validation_alias=_env("LIVEAVATAR_VOICE_ID"))
    liveavatar_context_id: str | None = Field(None, validation_alias=_env("LIVEAVATAR_CONTEXT_ID"))

    # --- serving ---
    host: str = Field("127.0.0.1", validation_alias=_env("TALKGATE_HOST"))
    port: int = Field(8000, validation_alias=_env("TALKGATE_PORT"))
    public_url: str | None = Field(
        None, validation_alias=_env("TALKGATE_PUBLIC_URL", "NEXT_PUBLIC_BACKEND_DOMAIN", "VERCEL_URL")
    )
    data_dir: Path = Field(Path("data"), validation_alias=_env("TALKGATE_DATA_DIR"))
    database_url: str | None = Field(None, validation_alias=_env("TALKGATE_DATABASE_URL"))
    storage_url: str | None = Field(None, validation_alias=_env("TALKGATE_STORAGE_URL"))
    s3_endpoint_url: str | None = Field(None, validation_alias=_env("TALKGATE_S3_ENDPOINT_URL"))
    s3_region: str | None = Field(None, validation_alias=_env("TALKGATE_S3_REGION", "AWS_REGION"))
    # Declared so that a .env file can hold them (botocore reads only the process environment);
    # unset, botocore's own chain (profiles, instance roles) applies.
    s3_access_key_id: str | None = Field(None, validation_alias=_env("AWS_ACCESS_KEY_ID"))
    s3_secret_access_key: SecretStr | None = Field(None, validation_alias=_env("AWS_SECRET_ACCESS_KEY"))
    s3_session_token: SecretStr | None = Field(None, validation_alias=_env("AWS_SESSION_TOKEN"))
    media_port: int | None = Field(None, validation_alias=_env("TALKGATE_MEDIA_PORT"))
    redis_url: str | None = Field(None, validation_alias=_env("TALKGATE_REDIS_URL"))
    redis_channel: str = Field("talkgate", min_length=1, validation_alias=_env("TALKGATE_REDIS_CHANNEL"))
    workers: int = Field(1, ge=1, le=64, validation_alias=_env("TALKGATE_WORKERS"))
    # Comma-separated origins allowed to call talkgate from a browser (HTTP and Socket.IO); none by default.
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("TALKGATE_CORS_ORIGINS")
    )
    # Origins the pages may also connect to (Content-Security-Policy connect-src), comma-separated:
    # a provider's socket on a host talkgate cannot know in advance.
    csp_connect_src: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=_env("TALKGATE_CSP_CONNECT_SRC")
    )
    log_level: str = Field("INFO", validation_alias=_env("TALKGATE_LOG_LEVEL"))
    log_format: Literal["text", "json"] = Field("text", validation_alias=_env("TALKGATE_LOG_FORMAT"))
    # /metrics: with a token, only `Authorization: Bearer <token>`; without, only loopback clients.
    metrics_token: SecretStr | None = Field(None, validation_alias=_env("TALKGATE_METRICS_TOKEN"))

    # --- auth ---
    jwt_secret: SecretStr = Field(SecretStr(DEV_JWT_SECRET), validation_alias=_env("TALKGATE_JWT_SECRET"))
    jwt_jwks_url: str | None = Field(None, validation_alias=_env("TALKGATE_JWT_JWKS_URL"))
    jwt_audience: str | None = Field(None, validation_alias=_env("TALKGATE_JWT_AUDIENCE"))
    jwt_issuer: str | None = Field(None, validation_alias=_env("TALKGATE_JWT_ISSUER"))
    jwt_ttl_s: int = Field(24 * 3600, validation_alias=_env("TALKGATE_JWT_TTL"))
    # The secret of the URLs talkgate signs itself (playback links, media-socket URLs), whatever
    # verifies users' JWTs; required in production. ``_PREVIOUS``: retired ones still accepted.
    signing_secret: SecretStr | None = Field(None, validation_alias=_env("TALKGATE_SIGNING_SECRET"))
    signing_secret_previous: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, validation_alias=_env("TALKGATE_SIGNING_SECRET_PREVIOUS")
    )

    # --- relay and dialects (docs/protocol.md "Push-to-talk dialects") ---
    # Unset or ``auto`` (None): ElevenLabs' published API with a real key, the signal dialect with the
    # built-in simulator; what each means for a call is ``dialect`` below.
    ptt_turn_end: TurnEndMode | None = Field(None, validation_alias=_env("TALKGATE_PTT_TURN_END"))
    ptt_silence_ms: int = Field(
        DEFAULT_SILENCE_MS, ge=100, le=5000, validation_alias=_env("TALKGATE_PTT_SILENCE_MS")
    )
    keepalive: KeepAliveMode | None = Field(None, validation_alias=_env("TALKGATE_KEEPALIVE"))
    keepalive_interval_s: float = Field(15.0, gt=0, validation_alias=_env("TALKGATE_KEEPALIVE_INTERVAL"))
    inactivity_timeout: int | None = Field(
        None, ge=0, le=180, validation_alias=_env("TALKGATE_INACTIVITY_TIMEOUT")
    )
    max_chunk_bytes: int = Field(128_000, gt=0, validation_alias=_env("TALKGATE_MAX_CHUNK_BYTES"))
    # An HTTP request body (JSON routes); the audio-chunk and webhook routes have larger caps of their own.
    max_request_bytes: int = Field(1_048_576, ge=1024, validation_alias=_env("TALKGATE_MAX_REQUEST_BYTES"))
    # One Socket.IO message (event and attachments): larger ones close that socket (Engine.IO's rule).
    max_message_bytes: int = Field(1_000_000, ge=1024, validation_alias=_env("TALKGATE_MAX_MESSAGE_BYTES"))
    # Binary attachments one Socket.IO packet may declare (talkgate's events use at most one); the packet
    # and all its attachments together are held to TALKGATE_MAX_MESSAGE_BYTES. Beyond: the socket is closed.
    max_attachments: int = Field(2, ge=1, le=16, validation_alias=_env("TALKGATE_MAX_ATTACHMENTS"))
    # conversation_start's metadata, dynamicVariables and overrides: each at most this many bytes (as
    # JSON) and this deep (nested objects/arrays).
    max_start_field_bytes: int = Field(
        65_536, ge=256, le=1_000_000, validation_alias=_env("TALKGATE_MAX_START_FIELD_BYTES")
    )
    max_start_field_depth: int = Field(
        8, ge=1, le=64, validation_alias=_env("TALKGATE_MAX_START_FIELD_DEPTH")
    )
    # Packets waiting to be sent to one socket: a peer that sends events (each answered) but does not
    # read would grow this without end; past it, the socket is closed (slow_consumer). Agent audio is
    # dropped well before (200 packets), so a live app never comes near.
    max_socket_backlog: int = Field(1000, ge=50, validation_alias=_env("TALKGATE_MAX_SOCKET_BACKLOG"))
    # An Engine.IO session (websocket or long-polling) must complete its authenticated Socket.IO connect
    # within this many seconds, and is closed when it has no connected Socket.IO socket for that long.
    connect_timeout_s: float = Field(10.0, gt=0, le=300, validation_alias=_env("TALKGATE_CONNECT_TIMEOUT"))
    # Per user, per process (with N workers a user may hold up to N times as many).
    max_sockets_per_user: int = Field(10, ge=1, validation_alias=_env("TALKGATE_MAX_SOCKETS_PER_USER"))
    max_conversations_per_user: int = Field(
        5, ge=1, validation_alias=_env("TALKGATE_MAX_CONVERSATIONS_PER_USER")
    )
    # Lines a minute that bad input from one peer (client address) may write to the log; beyond, they
    # are counted and the count is logged when that peer's socket closes.
    peer_log_lines_per_minute: int = Field(
        10, ge=1, le=10_000, validation_alias=_env("TALKGATE_PEER_LOG_LINES_PER_MINUTE")
    )
    # The relay's hot-path shortcuts into python-engineio/socketio, websockets and the garbage collector
    # (talkgate/fastpaths/); off: every library on its own path (slower, same behaviour).
    fastpaths: bool = Field(True, validation_alias=_env("TALKGATE_FASTPATHS"))
    provider_timeout_s: float = Field(10.0, gt=0, validation_alias=_env("TALKGATE_PROVIDER_TIMEOUT"))
    media_streaming: bool | None = Field(None, validation_alias=_env("TALKGATE_MEDIA_STREAMING"))
    recording_channels: int = Field(1, ge=1, le=2, validation_alias=_env("TALKGATE_RECORDING_CHANNELS"))
    call_end_wait_s: float = Field(5.0, ge=0, le=60, validation_alias=_env("TALKGATE_CALL_END_WAIT"))
    # A direct or avatar call with no sign of life (a chunk, a transcript line, a keep-alive, a media
    # stream) for this long is ended ``abandoned`` (calls/idle.py); 0: never. LiveAvatar's own idle
    # timeout is 5 minutes and the page's keep-alive comes every minute.
    call_idle_timeout_s: float = Field(
        300.0, ge=0, le=7 * 86400, validation_alias=_env("TALKGATE_CALL_IDLE_TIMEOUT")
    )

    # --- bounds on what one request or one user may make talkgate hold (docs/security.md) ---
    # The provider's post-call webhook: a 2-hour MP3 at 128 kbit/s is 7200 s x 16 000 B/s = 115.2 MB,
    # 153.6 MB in base64 (x 4/3), plus the JSON around it: 160 MiB.
    max_webhook_bytes: int = Field(
        160 * 1024 * 1024, ge=1024, validation_alias=_env("TALKGATE_MAX_WEBHOOK_BYTES")
    )
    # Webhook bodies being received and not yet verified, per process, and from one client address;
    # beyond either: 503 webhook_busy. They are spooled to disk, so a higher total costs little memory.
    webhook_concurrency: int = Field(16, ge=1, le=256, validation_alias=_env("TALKGATE_WEBHOOK_CONCURRENCY"))
    webhook_concurrency_per_peer: int = Field(
        4, ge=1, le=256, validation_alias=_env("TALKGATE_WEBHOOK_CONCURRENCY_PER_PEER")
    )
    # An unverified webhook body must arrive at this average rate (KiB/s) once the grace period (s)
    # is over; slower, or idle: cut off with 408 request_too_slow, its slot freed.
    webhook_min_rate_kib_s: float = Field(
        32.0, gt=0, validation_alias=_env("TALKGATE_WEBHOOK_MIN_RATE_KIB_S")
    )
    webhook_rate_grace_s: float = Field(
        2.0, gt=0, le=300, validation_alias=_env("TALKGATE_WEBHOOK_RATE_GRACE_S")
    )
    # Nesting of any JSON request body (objects and arrays); deeper: 400 bad_request.
    max_json_depth: int = Field(32, ge=2, le=200, validation_alias=_env("TALKGATE_MAX_JSON_DEPTH"))
    # A conversation session's metadata, serialized as JSON; larger: 413 metadata_too_large.
    max_metadata_bytes: int = Field(4096, ge=64, validation_alias=_env("TALKGATE_MAX_METADATA_BYTES"))
    # A user's sessions and calls still "active" that began within the window; beyond: 429.
    max_active_sessions_per_user: int = Field(
        20, ge=1, validation_alias=_env("TALKGATE_MAX_ACTIVE_SESSIONS_PER_USER")
    )
    max_active_calls_per_user: int = Field(
        10, ge=1, validation_alias=_env("TALKGATE_MAX_ACTIVE_CALLS_PER_USER")
    )
    # Calls of every mode one user may start in an hour (counted in the database); 0: no limit.
    # Ending a call frees its place among those in progress, never its place in this count.
    max_calls_per_user_per_hour: int = Field(
        120, ge=0, validation_alias=_env("TALKGATE_MAX_CALLS_PER_USER_PER_HOUR")
    )
    # Sessions and calls never ended (a page closed without /end) stop counting after this long.
    active_window_hours: float = Field(
        3.0, gt=0, le=24 * 7, validation_alias=_env("TALKGATE_ACTIVE_WINDOW_HOURS")
    )
    # Everything in the spool folder (live recordings and the apps' chunks); beyond: 507 spool_full
    # for chunk uploads (live recordings go on; see docs/security.md).
    max_spool_bytes: int = Field(4 * 1024**3, ge=0, validation_alias=_env("TALKGATE_MAX_SPOOL_BYTES"))
    # The app's chunks of one call: 256 MiB is about 2 hours of 16 kHz PCM16; beyond: 413 too_much_audio.
    max_call_chunks_bytes: int = Field(
        256 * 1024 * 1024, ge=0, validation_alias=_env("TALKGATE_MAX_CALL_CHUNKS_BYTES")
    )

    # Production without ELEVENLABS_API_KEY: ``serve`` refuses to start, unless this says that the
    # built-in simulator (an echoing agent, no real provider) is what is meant, e.g. a staging demo.
    allow_simulator: bool = Field(False, validation_alias=_env("TALKGATE_ALLOW_SIMULATOR"))

    # Set by ``serve`` when it starts the built-in simulator; not read from the environment.
    simulator_mode: bool = Field(False, exclude=True)

    @field_validator("public_url")
    @classmethod
    def _normalise_public_url(cls, value: str | None) -> str | None:
        # The seed's NEXT_PUBLIC_BACKEND_DOMAIN and VERCEL_URL are bare host names.
        if not value:
            return None
        value = value.rstrip("/")
        return value if "://" in value else f"https://{value}"

    @field_validator("cors_origins", "csp_connect_src", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [o.strip() for o in value.split(",") if o.strip()]
        return value

    @field_validator("csp_connect_src")
    @classmethod
    def _one_source_each(cls, value: list[str]) -> list[str]:
        for source in value:
            if any(c.isspace() or c in ";'\"" for c in source):
                raise ValueError(
                    "TALKGATE_CSP_CONNECT_SRC: each source is one origin, e.g. wss://rooms.example.com"
                )
        return value

    @field_validator("database_url")
    @classmethod
    def _parsable_database_url(cls, value: str | None) -> str | None:
        if value:
            try:
                make_url(value)
            except (ArgumentError, ValueError):  # their text quotes the URL, password and all
                raise ValueError(
                    "not a database URL (e.g. postgresql+asyncpg://user:password@host:5432/talkgate; "
                    "the port, if given, a number)"
                ) from None
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < MIN_JWT_SECRET_BYTES:
            raise ValueError(f"TALKGATE_JWT_SECRET must be at least {MIN_JWT_SECRET_BYTES} bytes long")
        return value

    @field_validator("signing_secret_previous", mode="before")
    @classmethod
    def _split_previous(cls, value: object) -> object:
        if isinstance(value, str):
            return [s.strip() for s in value.split(",") if s.strip()]
        return value

    @field_validator("signing_secret")
    @classmethod
    def _real_signing_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_signing_secret("TALKGATE_SIGNING_SECRET", value)
        return value

    @field_validator("signing_secret_previous")
    @classmethod
    def _real_previous_secrets(cls, value: list[SecretStr]) -> list[SecretStr]:
        for secret in value:
            _check_signing_secret("TALKGATE_SIGNING_SECRET_PREVIOUS", secret)
        return value

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Self:
        problems = production_problems(self) if self.environment is Environment.PRODUCTION else []
        if problems:  # all at once, one line each, each starting with its setting's name
            raise ValueError("\n".join(problems))
        return self

    # --- derived values ---

    @property
    def signing_secret_is_derived(self) -> bool:
        """Development without TALKGATE_SIGNING_SECRET: the signing secret comes from the JWT secret."""
        return self.signing_secret is None

    def signing_secrets(self) -> tuple[bytes, ...]:
        """The secret that signs talkgate's own URLs first, then the retired ones still accepted."""
        if self.signing_secret is not None:
            current = self.signing_secret.get_secret_value().encode()
        else:  # development only: production refuses to start without a signing secret
            jwt_secret = self.jwt_secret.get_secret_value().encode()
            current = hmac.new(jwt_secret, DEV_SIGNING_LABEL, hashlib.sha256).digest()
        return (current, *(s.get_secret_value().encode() for s in self.signing_secret_previous))

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'talkgate.db'}"

    @property
    def effective_storage_url(self) -> str:
        return self.storage_url or f"file://{(self.data_dir / 'recordings').resolve()}"

    @property
    def spool_dir(self) -> Path:
        """Recordings being written; what a crash leaves here is repaired at the next start."""
        return self.data_dir / "spool"

    @property
    def effective_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @property
    def media_streaming_enabled(self) -> bool:
        # Media-stream recording is not in ElevenLabs' published API: on against the simulator,
        # off against the real provider unless asked for.
        return self.simulator_mode if self.media_streaming is None else self.media_streaming

    @field_validator("ptt_turn_end", "keepalive", "inactivity_timeout", mode="before")
    @classmethod
    def _auto(cls, value: object, info: ValidationInfo) -> object:
        """``auto`` (or empty) is None, resolved by ``dialect``; anything else names every choice."""
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", AUTO)):
            return None
        choices = {"ptt_turn_end": TurnEndMode, "keepalive": KeepAliveMode}.get(info.field_name or "")
        if choices is not None and str(value) not in {m.value for m in choices}:
            raise ValueError(f"expected one of {', '.join([AUTO, *(m.value for m in choices)])}")
        return value

    @property
    def uses_builtin_simulator(self) -> bool:
        """No key of the deployer's own: the built-in simulator is (or will be) the provider."""
        return self.simulator_mode or self.elevenlabs_api_key is None

    @property
    def dialect(self) -> Dialect:
        """What the relay and the page say to the provider: the one place ``auto`` is resolved."""
        return resolve(
            self.ptt_turn_end,
            self.keepalive,
            self.inactivity_timeout,
            self.ptt_silence_ms,
            published_only=not self.uses_builtin_simulator,
        )

    def agent_id_for(self, voice: str | None) -> str:
        """The voice → agent mapping, each falling back to ELEVENLABS_AGENT_ID."""
        try:
            v = Voice(voice or Voice.DEFAULT)
        except ValueError:
            raise ProtocolError(
                f"unknown voice {voice!r}; expected one of {', '.join(x.value for x in Voice)}",
                code=ErrorCode.UNKNOWN_VOICE,
            ) from None
        specific = {
            Voice.DEFAULT: self.elevenlabs_agent_id_default,
            Voice.FEMALE: self.elevenlabs_agent_id_female,
            Voice.MALE: self.elevenlabs_agent_id_male,
        }[v]
        agent = specific or self.elevenlabs_agent_id
        if not agent:
            raise ProtocolError(
                f"no agent configured for voice {v.value!r}; set ELEVENLABS_AGENT_ID",
                code=ErrorCode.UNKNOWN_VOICE,
            )
        return agent


def production_problems(settings: Settings) -> list[str]:
    """What production refuses in ``settings``, one line each, starting with the setting's name."""
    problems = []
    jwt_secret = settings.jwt_secret.get_secret_value()
    if jwt_secret in PLACEHOLDER_SECRETS and not settings.jwt_jwks_url:
        problems.append("TALKGATE_JWT_SECRET is a placeholder; set a real secret in production")
    if settings.signing_secret is None:
        problems.append(
            "TALKGATE_SIGNING_SECRET is required in production (at least "
            f"{MIN_SIGNING_SECRET_BYTES} random bytes, e.g. `openssl rand -base64 48`): it signs "
            "playback links and media-socket URLs, whatever verifies users' JWTs"
        )
    elif hmac.compare_digest(settings.signing_secret.get_secret_value().encode(), jwt_secret.encode()):
        problems.append(
            "TALKGATE_SIGNING_SECRET must differ from TALKGATE_JWT_SECRET in production: whoever can issue "
            "users' tokens could then forge playback links and media-socket URLs, and one leak gives both"
        )
    for name in ("elevenlabs_api_key", "liveavatar_api_key", "elevenlabs_webhook_secret"):
        secret = getattr(settings, name)
        if secret is not None and secret.get_secret_value() in PLACEHOLDER_SECRETS:
            problems.append(f"{name.upper()} is a placeholder; set the real key in production")
    return problems


def _check_signing_secret(name: str, value: SecretStr) -> None:
    secret = value.get_secret_value()
    if secret in PLACEHOLDER_SECRETS:
        raise ValueError(f"{name} is a placeholder; set a random secret")
    if len(secret.encode()) < MIN_SIGNING_SECRET_BYTES:
        raise ValueError(f"{name} must be at least {MIN_SIGNING_SECRET_BYTES} bytes long")
