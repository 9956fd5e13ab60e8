"""The ElevenLabs checks: the key, each configured agent, signed URLs, audio formats, media
streaming, and a short probe conversation per turn-end dialect. Every request is bounded by
``TALKGATE_PROVIDER_TIMEOUT``; every probe conversation by that and the wait for its transcript."""

from __future__ import annotations

import asyncio
import contextlib

import httpx

from talkgate.doctor.advice import SECTION, DialectResult, ElevenLabsFindings, report_dialects
from talkgate.doctor.report import Report, Status
from talkgate.doctor.voice import vowel
from talkgate.errors import AudioError, ErrorCode, NotFoundError, ProviderError
from talkgate.protocol import convai
from talkgate.protocol import elevenlabs_rest as rest
from talkgate.protocol.audio import AudioFormat
from talkgate.protocol.dialect import Dialect, KeepAliveMode, TurnEndMode
from talkgate.protocol.ptt import AudioAccepted, TurnEnded, TurnStarted
from talkgate.providers.elevenlabs import ElevenLabsConversation, ElevenLabsProvider
from talkgate.settings import Environment, Settings

PROBE_SPEECH_MS = 1200
CHUNK_MS = 100
REFUSAL_READ_S = 1.0  # the frames a closed socket still holds are read at once; this is a bound
AGENT_SETTINGS = (
    ("ELEVENLABS_AGENT_ID", "elevenlabs_agent_id"),
    ("ELEVENLABS_AGENT_ID_DEFAULT", "elevenlabs_agent_id_default"),
    ("ELEVENLABS_AGENT_ID_FEMALE", "elevenlabs_agent_id_female"),
    ("ELEVENLABS_AGENT_ID_MALE", "elevenlabs_agent_id_male"),
)


class Stop(Exception):
    """The key or the base URL failed: the other ElevenLabs checks cannot run."""


def configured_agents(settings: Settings) -> dict[str, list[str]]:
    """Each agent id and the settings that name it."""
    agents: dict[str, list[str]] = {}
    for env, field in AGENT_SETTINGS:
        value = getattr(settings, field)
        if value:
            agents.setdefault(value, []).append(env)
    return agents


async def check_elevenlabs(
    settings: Settings, report: Report, http: httpx.AsyncClient, *, wait_s: float, converse: bool
) -> ElevenLabsFindings:
    if settings.elevenlabs_api_key is None:
        if settings.environment is Environment.PRODUCTION and not settings.allow_simulator:
            reason = "not set: serve refuses to start in production without it"
            report.add(SECTION, "ELEVENLABS_API_KEY", Status.FAIL, reason)
        else:
            reason = "not set: calls go to the built-in simulator"
            report.add(SECTION, "ELEVENLABS_API_KEY", Status.SKIP, reason)
        return ElevenLabsFindings()
    if settings.simulator_mode:
        report.add(SECTION, "provider", Status.WARN, "the built-in simulator (no ELEVENLABS_API_KEY is set)")
    provider = ElevenLabsProvider(
        http,
        settings.elevenlabs_base_url,
        settings.elevenlabs_api_key.get_secret_value(),
        timeout=settings.provider_timeout_s,
    )
    agents = configured_agents(settings)
    if not agents:
        report.add(SECTION, "ELEVENLABS_AGENT_ID", Status.FAIL, "not set: no agent to talk to")
        return ElevenLabsFindings()
    try:
        details = await _agents(settings, provider, agents, report)
        primary = details.get(settings.agent_id_for(None))
        if primary is None:
            return ElevenLabsFindings()
        needs_signed = await _authentication(settings, provider, primary, report)
        if not _formats(primary, report):
            return ElevenLabsFindings(needs_signed_urls=needs_signed)
        media = await _media_streaming(settings, provider, primary.agent_id, report)
    except Stop:
        return ElevenLabsFindings()
    dialects: tuple[DialectResult, ...] = ()
    if converse:
        dialects = tuple(
            [await probe_dialect(settings, provider, primary.agent_id, mode, wait_s) for mode in TurnEndMode]
        )
        report_dialects(dialects, report)
    return ElevenLabsFindings(dialects, needs_signed, media)


def _stop_on(settings: Settings, exc: ProviderError, report: Report) -> Stop:
    if exc.code is ErrorCode.PROVIDER_AUTH:
        report.add(SECTION, "ELEVENLABS_API_KEY", Status.FAIL, exc.message)
    else:
        where = settings.elevenlabs_base_url
        report.add(SECTION, "ELEVENLABS_BASE_URL", Status.FAIL, f"{where}: {exc.message}")
    return Stop()


async def _agents(
    settings: Settings, provider: ElevenLabsProvider, agents: dict[str, list[str]], report: Report
) -> dict[str, rest.AgentDetails]:
    found: dict[str, rest.AgentDetails] = {}
    lines: list[tuple[str, Status, str]] = []
    for agent_id, names in agents.items():
        try:
            details = await provider.agent(agent_id)
        except NotFoundError as exc:
            lines.append((", ".join(names), Status.FAIL, exc.message))
            continue
        except ProviderError as exc:
            raise _stop_on(settings, exc, report) from None
        found[agent_id] = details
        lines.append((", ".join(names), Status.OK, f"{agent_id} exists ({details.name or 'no name'})"))
    report.add(SECTION, "ELEVENLABS_API_KEY", Status.OK, f"accepted by {settings.elevenlabs_base_url}")
    for name, status, reason in lines:
        report.add(SECTION, name, status, reason)
    return found


async def _authentication(
    settings: Settings, provider: ElevenLabsProvider, agent: rest.AgentDetails, report: Report
) -> bool:
    name = "signed URLs"
    if agent.enable_auth and settings.elevenlabs_public_agents:
        report.add(
            SECTION,
            "ELEVENLABS_PUBLIC_AGENTS",
            Status.FAIL,
            f"{agent.agent_id} has authentication on (it needs signed URLs): "
            "set ELEVENLABS_PUBLIC_AGENTS=false",
        )
        return True
    if not settings.elevenlabs_public_agents:
        try:
            await provider.signed_url(agent.agent_id)
        except ProviderError as exc:
            report.add(SECTION, name, Status.FAIL, f"no signed URL for {agent.agent_id}: {exc.message}")
            return agent.enable_auth
    if agent.enable_auth:
        report.add(SECTION, name, Status.OK, "the agent has authentication on: talkgate signs each URL")
    else:
        report.add(
            SECTION,
            name,
            Status.WARN,
            "the agent has authentication off: anyone who knows its id can talk to it, billed to you "
            "(turn authentication on in the agent's security settings)",
        )
    return agent.enable_auth


def _formats(agent: rest.AgentDetails, report: Report) -> bool:
    problems = []
    for side, name in (("input", agent.input_format), ("output", agent.output_format)):
        try:
            AudioFormat.parse(name)
        except AudioError:
            problems.append(f"{side} {name}")
    if problems:
        report.add(
            SECTION,
            "audio formats",
            Status.FAIL,
            f"talkgate cannot relay {' and '.join(problems)}: choose PCM (pcm_16000) or ulaw_8000 in the "
            "agent's voice and advanced settings",
        )
        return False
    report.add(
        SECTION,
        "audio formats",
        Status.OK,
        f"input {agent.input_format}, output {agent.output_format}: talkgate converts to and from both",
    )
    return True


async def _media_streaming(
    settings: Settings, provider: ElevenLabsProvider, agent_id: str, report: Report
) -> bool:
    name = "media streaming"
    try:
        offered = await provider.media_streaming_offered(agent_id)
    except ProviderError as exc:
        raise _stop_on(settings, exc, report) from None
    if offered:
        report.add(SECTION, name, Status.OK, "offered: the provider answers conversation/start")
    elif settings.media_streaming_enabled:
        report.add(
            SECTION,
            "TALKGATE_MEDIA_STREAMING",
            Status.FAIL,
            "on, but the provider has no conversation/start (not in its published API): set it to false",
        )
    else:
        report.add(
            SECTION,
            name,
            Status.OK,
            "not offered (not in the published API); recordings come from the relay, the app's upload "
            "or the post-call webhook",
        )
    return offered


async def probe_dialect(
    settings: Settings, provider: ElevenLabsProvider, agent_id: str, mode: TurnEndMode, wait_s: float
) -> DialectResult:
    """One short conversation: a spoken-like turn ended the ``mode`` way, then the wait for the
    user's transcript. Never longer than opening the socket plus the turn plus ``wait_s``."""
    signed = provider.public_url(agent_id) if settings.elevenlabs_public_agents else None
    try:
        async with asyncio.timeout(settings.provider_timeout_s * 2 + PROBE_SPEECH_MS / 1000 + wait_s):
            conversation = await provider.open_conversation(
                agent_id, convai.ConversationInitiationClientData(), signed_url=signed
            )
            try:
                return await _one_turn(conversation, settings, mode, wait_s)
            finally:
                await conversation.close()
    except TimeoutError:
        return DialectResult(mode, False, None, "the probe conversation did not finish in time")
    except ProviderError as exc:
        return DialectResult(mode, False, None, f"could not hold a probe conversation: {exc.message}")


async def _one_turn(
    conversation: ElevenLabsConversation, settings: Settings, mode: TurnEndMode, wait_s: float
) -> DialectResult:
    """One turn sent as the relay sends a user's: the speech at real-time pace, then the turn's
    end the dialect's way at once (the silence tail too: the relay sends it in one go at the
    release). Both dialects are timed the same way, from the release to the transcript, so the
    figures are what a relay user waits and compare like with like."""
    dialect = Dialect(mode, KeepAliveMode.USER_ACTIVITY, settings.ptt_silence_ms)
    fmt = conversation.input_format
    speech = vowel(fmt, PROBE_SPEECH_MS)
    loop = asyncio.get_running_loop()
    try:
        for sent in dialect.upstream(TurnStarted(1), fmt):
            await conversation.send(sent)
        chunks = await _speak(conversation, dialect, fmt, speech)
        released = loop.time()
        for sent in dialect.upstream(TurnEnded(1, chunks, len(speech)), fmt):
            await conversation.send(sent)
    except ProviderError:
        return await _refused_while_sending(conversation, mode)
    try:
        async with asyncio.timeout(wait_s):
            async for event in conversation.events():
                if isinstance(event, convai.UserTranscript):
                    return DialectResult(mode, True, loop.time() - released, "")
                if isinstance(event, convai.ServerError):
                    return _refused(conversation, mode, event)
    except TimeoutError:
        return DialectResult(
            mode, False, None, f"no transcript within {wait_s:g} s of the release (the turn never ended)"
        )
    return _refused(conversation, mode, None)


async def _speak(
    conversation: ElevenLabsConversation, dialect: Dialect, fmt: AudioFormat, speech: bytes
) -> int:
    """Sends ``speech`` in CHUNK_MS chunks, each when a microphone would have it (CHUNK_MS after the
    one before), so a provider whose VAD runs on the clock has no backlog at the release (sent at
    once, the 1.2 s of speech were still being heard after it, and timed as the turn's end)."""
    step = fmt.bytes_for_ms(CHUNK_MS)
    loop = asyncio.get_running_loop()
    start = loop.time()
    chunks = [speech[i : i + step] for i in range(0, len(speech), step)]
    for n, chunk in enumerate(chunks, 1):
        await asyncio.sleep(max(0.0, start + n * CHUNK_MS / 1000 - loop.time()))
        for sent in dialect.upstream(AudioAccepted(1, chunk), fmt):
            await conversation.send(sent)
    return len(chunks)


async def _refused_while_sending(conversation: ElevenLabsConversation, mode: TurnEndMode) -> DialectResult:
    """The socket closed under the probe's speech: the provider's error, received before its close
    and still unread, says why (a strict agent names the message it refused)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(REFUSAL_READ_S):
            async for event in conversation.events():
                if isinstance(event, convai.ServerError):
                    return _refused(conversation, mode, event)
    return _refused(conversation, mode, None)


def _refused(
    conversation: ElevenLabsConversation, mode: TurnEndMode, error: convai.ServerError | None
) -> DialectResult:
    closed = conversation.closed
    said = f"{error.error_type}: {error.message}" if error else ""
    if closed is not None and not said:
        said = f"closed {closed.code} {closed.reason}".strip()
    hint = "; the agent takes only the published protocol" if mode is TurnEndMode.SIGNAL else ""
    return DialectResult(mode, False, None, f"the provider ended the conversation ({said or 'closed'}){hint}")
