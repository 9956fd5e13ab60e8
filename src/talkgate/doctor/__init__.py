"""``talkgate doctor``: the deployment's configuration and providers, checked with the settings
``talkgate serve`` would use. Read-only on the provider accounts except one short probe conversation
per turn-end dialect and one sandbox avatar session.

Pure parts (``report``, ``config``, ``advice``, ``voice``) hold the checks' logic and results as
data; ``infra``, ``elevenlabs`` and ``liveavatar`` run the bounded probes."""

from __future__ import annotations

import httpx

from talkgate.doctor.advice import env_lines
from talkgate.doctor.config import check_configuration
from talkgate.doctor.elevenlabs import check_elevenlabs
from talkgate.doctor.infra import check_database, check_redis, check_storage
from talkgate.doctor.liveavatar import check_liveavatar
from talkgate.doctor.report import Report, render
from talkgate.settings import Settings

__all__ = ["Report", "diagnose", "render", "secrets_of"]


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in ``settings``: none of them may appear in the output."""
    values = [
        settings.elevenlabs_api_key,
        settings.liveavatar_api_key,
        settings.elevenlabs_webhook_secret,
        settings.jwt_secret,
        settings.signing_secret,
        settings.metrics_token,
        *settings.signing_secret_previous,
    ]
    return [v.get_secret_value() for v in values if v is not None]


async def diagnose(settings: Settings, *, wait_s: float = 5.0, converse: bool = True) -> Report:
    report = Report()
    check_configuration(settings, report)
    timeout = settings.provider_timeout_s
    await check_database(settings, report, timeout)
    await check_storage(settings, report, timeout)
    await check_redis(settings, report, timeout)
    async with httpx.AsyncClient() as http:
        findings = await check_elevenlabs(settings, report, http, wait_s=wait_s, converse=converse)
        await check_liveavatar(settings, report, http)
    report.env_lines = env_lines(settings, findings)
    return report
