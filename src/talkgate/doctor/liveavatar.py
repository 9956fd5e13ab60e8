"""The LiveAvatar checks: the key, the configured avatar, voice and context, and a sandbox session
created, started and stopped (sandbox sessions cost no credits and take only the sandbox avatar)."""

from __future__ import annotations

import httpx

from talkgate.doctor.report import Report, Status
from talkgate.errors import ErrorCode, NotFoundError, ProviderError
from talkgate.protocol.liveavatar import SANDBOX_AVATAR_ID, Resource
from talkgate.providers.liveavatar import LiveAvatarProvider
from talkgate.settings import Settings

SECTION = "LiveAvatar"
TRANSPORT = (ErrorCode.PROVIDER_UNREACHABLE, ErrorCode.PROVIDER_TIMEOUT)


class Stop(Exception):
    """The key or the base URL failed: the other LiveAvatar checks cannot run."""


def _stop_on(settings: Settings, exc: ProviderError, report: Report) -> Stop:
    if exc.code is ErrorCode.PROVIDER_AUTH:
        report.add(SECTION, "LIVEAVATAR_API_KEY", Status.FAIL, exc.message)
    else:
        where = settings.liveavatar_base_url
        report.add(SECTION, "LIVEAVATAR_BASE_URL", Status.FAIL, f"{where}: {exc.message}")
    return Stop()


async def check_liveavatar(settings: Settings, report: Report, http: httpx.AsyncClient) -> None:
    if settings.liveavatar_api_key is None:
        if settings.liveavatar_avatar_id:
            report.add(SECTION, "LIVEAVATAR_API_KEY", Status.FAIL, "not set, though LIVEAVATAR_AVATAR_ID is")
        else:
            report.add(SECTION, "LIVEAVATAR_API_KEY", Status.SKIP, "not set: avatar mode is off")
        return
    provider = LiveAvatarProvider(
        http,
        settings.liveavatar_base_url,
        settings.liveavatar_api_key.get_secret_value(),
        timeout=settings.provider_timeout_s,
    )
    try:
        lines = await _resources(settings, provider, report)
        await _sandbox(settings, provider, report, lines)
    except Stop:
        return


async def _resources(
    settings: Settings, provider: LiveAvatarProvider, report: Report
) -> list[tuple[str, Status, str]]:
    lines: list[tuple[str, Status, str]] = []
    for kind, env, value in (
        (Resource.AVATAR, "LIVEAVATAR_AVATAR_ID", settings.liveavatar_avatar_id),
        (Resource.VOICE, "LIVEAVATAR_VOICE_ID", settings.liveavatar_voice_id),
        (Resource.CONTEXT, "LIVEAVATAR_CONTEXT_ID", settings.liveavatar_context_id),
    ):
        if not value:
            lines.append((env, *_unset(kind)))
            continue
        try:
            found = await provider.resource(kind, value)
        except NotFoundError as exc:
            lines.append((env, Status.FAIL, exc.message))
        except ProviderError as exc:
            raise _stop_on(settings, exc, report) from None
        else:
            lines.append((env, Status.OK, f"{value} exists ({found.name or 'no name'})"))
    return lines


def _unset(kind: Resource) -> tuple[Status, str]:
    if kind is Resource.AVATAR:
        return Status.WARN, "not set: each avatar session must name its avatar"
    if kind is Resource.CONTEXT:
        return Status.WARN, "not set: without a context the avatar does not answer (restricted mode)"
    return Status.OK, "not set: the avatar's own voice"


async def _sandbox(
    settings: Settings, provider: LiveAvatarProvider, report: Report, lines: list[tuple[str, Status, str]]
) -> None:
    name = "sandbox session"
    try:
        token = await provider.create_token(
            SANDBOX_AVATAR_ID,
            voice_id=settings.liveavatar_voice_id,
            context_id=settings.liveavatar_context_id,
            is_sandbox=True,
        )
    except ProviderError as exc:
        if exc.code in (ErrorCode.PROVIDER_AUTH, *TRANSPORT):
            if exc.code is not ErrorCode.PROVIDER_AUTH:
                _add_all(report, lines)
            raise _stop_on(settings, exc, report) from None
        # The key was taken; the provider refused the session itself (a voice or context it rejects).
        _add_all(report, lines)
        report.add(SECTION, name, Status.FAIL, f"no sandbox session: {exc.message}")
        return
    report.add(SECTION, "LIVEAVATAR_API_KEY", Status.OK, f"accepted by {settings.liveavatar_base_url}")
    _add_all(report, lines)
    try:
        await provider.start(token)
    except ProviderError as exc:
        report.add(SECTION, name, Status.FAIL, f"created, but it would not start: {exc.message}")
        return
    finally:
        try:
            await provider.stop(token.session_id, "USER_CLOSED")
            stopped = None
        except (ProviderError, NotFoundError) as exc:
            stopped = exc.message
    if stopped:
        report.add(SECTION, name, Status.FAIL, f"started, but it would not stop: {stopped}")
    else:
        report.add(SECTION, name, Status.OK, "a sandbox session was created, started and stopped")


def _add_all(report: Report, lines: list[tuple[str, Status, str]]) -> None:
    for env, status, reason in lines:
        report.add(SECTION, env, status, reason)
