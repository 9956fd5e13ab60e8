"""The configuration's checks: secrets present and strong, a public URL the provider can reach,
Redis when several workers share a port. Pure: they read Settings only."""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from pydantic import SecretStr

from talkgate.doctor.report import Report, Status
from talkgate.settings import (
    DEV_JWT_SECRET,
    MIN_JWT_SECRET_BYTES,
    MIN_SIGNING_SECRET_BYTES,
    PLACEHOLDER_SECRETS,
    Environment,
    Settings,
)

SECTION = "configuration"
MIN_DISTINCT = 10  # different characters in a secret: `openssl rand -base64 48` gives about 40
MIN_WEBHOOK_SECRET_BYTES = 16  # ElevenLabs' own minimum for a webhook secret
LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")


def weakness(secret: str, min_bytes: int) -> str | None:
    """Why ``secret`` is weak, or None."""
    if secret in PLACEHOLDER_SECRETS:
        return "is a placeholder"
    if len(secret.encode()) < min_bytes:
        return f"is {len(secret.encode())} bytes long (at least {min_bytes})"
    if len(set(secret)) < MIN_DISTINCT:
        return f"has only {len(set(secret))} different characters: not random"
    return None


def _bad(settings: Settings) -> Status:
    """A problem that production must not have; development may go on with it."""
    return Status.FAIL if settings.environment is Environment.PRODUCTION else Status.WARN


def check_configuration(settings: Settings, report: Report) -> None:
    _jwt_secret(settings, report)
    _signing_secret(settings, report)
    _webhook_secret(settings, report)
    _public_url(settings, report)
    _workers(settings, report)


def _jwt_secret(settings: Settings, report: Report) -> None:
    name = "TALKGATE_JWT_SECRET"
    secret = settings.jwt_secret.get_secret_value()
    if settings.jwt_jwks_url:
        report.add(SECTION, name, Status.OK, "users' tokens are verified with TALKGATE_JWT_JWKS_URL")
    elif secret == DEV_JWT_SECRET:
        report.add(SECTION, name, _bad(settings), "is the development placeholder; set a random secret")
    elif problem := weakness(secret, MIN_JWT_SECRET_BYTES):
        report.add(SECTION, name, Status.FAIL, f"{problem}; e.g. `openssl rand -base64 48`")
    else:
        report.add(SECTION, name, Status.OK, f"set, {len(secret.encode())} bytes")


def _signing_secret(settings: Settings, report: Report) -> None:
    name = "TALKGATE_SIGNING_SECRET"
    if settings.signing_secret is None:
        report.add(
            SECTION, name, _bad(settings), "not set: derived from TALKGATE_JWT_SECRET (development only)"
        )
        return
    secret = settings.signing_secret.get_secret_value()
    jwt_secret = settings.jwt_secret.get_secret_value()
    if hmac.compare_digest(secret.encode(), jwt_secret.encode()):
        report.add(SECTION, name, _bad(settings), "equals TALKGATE_JWT_SECRET; give it a secret of its own")
    elif problem := weakness(secret, MIN_SIGNING_SECRET_BYTES):
        report.add(SECTION, name, Status.FAIL, f"{problem}; e.g. `openssl rand -base64 48`")
    else:
        report.add(SECTION, name, Status.OK, f"set, {len(secret.encode())} bytes")


def _webhook_secret(settings: Settings, report: Report) -> None:
    name = "ELEVENLABS_WEBHOOK_SECRET"
    secret: SecretStr | None = settings.elevenlabs_webhook_secret
    if settings.simulator_mode:
        report.add(SECTION, name, Status.OK, "the built-in simulator signs its webhooks with its own")
    elif secret is None:
        report.add(
            SECTION,
            name,
            _bad(settings),
            "not set: the post-call webhooks (the provider's recording) are refused; copy the secret "
            "ElevenLabs shows when you add the webhook",
        )
    elif problem := weakness(secret.get_secret_value(), MIN_WEBHOOK_SECRET_BYTES):
        report.add(SECTION, name, Status.FAIL, problem)
    else:
        report.add(SECTION, name, Status.OK, "set")


def public_url_problem(url: str) -> str | None:
    """Why a provider on the internet cannot use ``url`` to reach talkgate, or None."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme != "https":
        return f"{url} is not https (the provider connects to wss:// and posts to https://)"
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        address = None
    if address is not None:
        if address.is_loopback or address.is_private or address.is_link_local or address.is_unspecified:
            return f"{url} is a loopback or private address the provider cannot reach"
        return None
    if not host or host == "localhost" or host.endswith(LOCAL_SUFFIXES) or "." not in host:
        return f"{url} names a local host the provider cannot reach"
    return None


def _public_url(settings: Settings, report: Report) -> None:
    name = "TALKGATE_PUBLIC_URL"
    url = settings.effective_public_url
    unset = "" if settings.public_url else " (not set: the listening address)"
    problem = public_url_problem(url)
    if problem is None:
        report.add(SECTION, name, Status.OK, f"{url}: reachable form (https, public host)")
    elif settings.simulator_mode and settings.environment is Environment.DEVELOPMENT:
        report.add(SECTION, name, Status.OK, f"{url}{unset}: enough for the built-in simulator")
    else:
        report.add(SECTION, name, _bad(settings), f"{problem}{unset}")


def _workers(settings: Settings, report: Report) -> None:
    if settings.workers <= 1:
        return
    if settings.redis_url is None:
        report.add(
            SECTION,
            "TALKGATE_REDIS_URL",
            Status.FAIL,
            f"not set with TALKGATE_WORKERS={settings.workers}: events reach only one worker's sockets",
        )
    if settings.effective_database_url.startswith("sqlite"):
        report.add(
            SECTION,
            "TALKGATE_DATABASE_URL",
            Status.WARN,
            f"SQLite with TALKGATE_WORKERS={settings.workers}: one writer at a time; use PostgreSQL",
        )
