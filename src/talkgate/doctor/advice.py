"""What the probe conversations mean for the settings: which turn-end dialect each agent honoured,
and the environment lines to set. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from talkgate.doctor.report import Report, Status
from talkgate.protocol.dialect import KeepAliveMode, TurnEndMode
from talkgate.settings import Settings

SECTION = "ElevenLabs"
# How much later than the silence tail's a signal turn's transcript may come and still count as
# ended by the signal (network and scheduling jitter between two probe conversations).
SIGNAL_SLACK_S = 0.25
# The silence figure is the relay's: its tail goes out whole at the release, so the time is the
# provider's VAD over the tail plus the network (next to nothing where the VAD counts samples).
TAIL_NOTE = " (the tail sent at the release, as the relay sends it)"


@dataclass(frozen=True, slots=True)
class DialectResult:
    """One probe conversation: a turn ended the ``mode`` way, and whether a transcript came."""

    mode: TurnEndMode
    honoured: bool
    seconds: float | None  # from the release (the turn's end sent) to the user's transcript
    reason: str


@dataclass(frozen=True, slots=True)
class ElevenLabsFindings:
    dialects: tuple[DialectResult, ...] = ()
    needs_signed_urls: bool | None = None
    media_streaming: bool | None = None


def report_dialects(results: tuple[DialectResult, ...], report: Report) -> None:
    chosen = chosen_turn_end(results)
    for result in results:
        name = f"turn end: {result.mode.value}"
        late = result.mode is TurnEndMode.SIGNAL and chosen is TurnEndMode.SILENCE
        if result.honoured and result.seconds is not None and late:
            report.add(
                SECTION,
                name,
                Status.WARN,
                f"a transcript came {result.seconds * 1000:.0f} ms after the release, later than the "
                "silence tail's: the agent likely ended the turn itself, not on end_user_audio",
            )
        elif result.honoured and result.seconds is not None:
            report.add(
                SECTION,
                name,
                Status.OK,
                f"honoured: the transcript came {result.seconds * 1000:.0f} ms after the release"
                + (TAIL_NOTE if result.mode is TurnEndMode.SILENCE else ""),
            )
        else:
            report.add(SECTION, name, Status.WARN, f"not honoured: {result.reason}")
    if results and not any(r.honoured for r in results):
        report.add(
            SECTION,
            "TALKGATE_PTT_TURN_END",
            Status.FAIL,
            "no turn-end dialect got a transcript: check the agent's speech recognition and audio format",
        )


def chosen_turn_end(results: tuple[DialectResult, ...]) -> TurnEndMode | None:
    """The signal dialect only where the agent was seen to honour it, and no slower than the
    silence tail: its one gain is ending the turn at the release, so a signal turn whose transcript
    came later was likely ended by the agent's own timers, not by ``end_user_audio``. Else the
    published silence tail. The two times are alike: the same speech at real-time pace, the turn's
    end sent as the relay sends it, timed from the release."""
    times = {r.mode: r.seconds for r in results if r.honoured and r.seconds is not None}
    signal, silence = times.get(TurnEndMode.SIGNAL), times.get(TurnEndMode.SILENCE)
    if signal is not None and (silence is None or signal <= silence + SIGNAL_SLACK_S):
        return TurnEndMode.SIGNAL
    if silence is not None:
        return TurnEndMode.SILENCE
    return None


def env_lines(settings: Settings, findings: ElevenLabsFindings) -> list[str]:
    """The exact lines to set, from what the checks found. None against the built-in simulator:
    the ``auto`` defaults are made for it, and lines found there would not fit a real agent."""
    lines: list[str] = []
    if settings.simulator_mode:
        return lines
    turn_end = chosen_turn_end(findings.dialects)
    if turn_end is not None:
        lines.append(f"TALKGATE_PTT_TURN_END={turn_end.value}")
        if turn_end is TurnEndMode.SILENCE:
            lines.append(f"TALKGATE_PTT_SILENCE_MS={settings.ptt_silence_ms}")
        # The published keep-alive: every provider behaviour accepts it.
        lines.append(f"TALKGATE_KEEPALIVE={KeepAliveMode.USER_ACTIVITY.value}")
    if findings.needs_signed_urls is not None:
        lines.append(f"ELEVENLABS_PUBLIC_AGENTS={'false' if findings.needs_signed_urls else 'true'}")
    if findings.media_streaming is not None:
        lines.append(f"TALKGATE_MEDIA_STREAMING={'true' if findings.media_streaming else 'false'}")
    return lines
