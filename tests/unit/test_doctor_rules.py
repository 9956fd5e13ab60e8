"""talkgate doctor's pure rules: what makes a secret weak, a public URL unreachable, which turn-end
dialect is suggested, and how the report reads (no secret in it)."""

from __future__ import annotations

import pytest

from talkgate.doctor.advice import (
    DialectResult,
    ElevenLabsFindings,
    chosen_turn_end,
    env_lines,
    report_dialects,
)
from talkgate.doctor.config import public_url_problem, weakness
from talkgate.doctor.report import Report, Status, render
from talkgate.protocol.dialect import TurnEndMode
from talkgate.settings import Settings

pytestmark = [pytest.mark.unit, pytest.mark.timeout(5)]


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("changethis", "is a placeholder"),
        ("short-but-random-7Kq", "is 20 bytes long (at least 32)"),
        ("ab" * 20, "has only 2 different characters: not random"),
        ("Vt9qP2xL7mR4kW8zN3bH6cJ1fD5gS0aY", None),
    ],
)
def test_weakness(secret, why):
    assert weakness(secret, 32) == why


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://talk.example.com", None),
        ("https://93.184.216.34", None),
        ("http://talk.example.com", "not https"),
        ("https://localhost:8000", "local host"),
        ("https://talkgate", "local host"),
        ("https://box.internal", "local host"),
        ("https://127.0.0.1:8443", "loopback or private"),
        ("https://10.1.2.3", "loopback or private"),
        ("https://[::1]:8443", "loopback or private"),
    ],
)
def test_public_url_problem(url, problem):
    found = public_url_problem(url)
    assert (found is None) if problem is None else (found is not None and problem in found)


def result(mode: TurnEndMode, honoured: bool) -> DialectResult:
    return DialectResult(mode, honoured, 0.05 if honoured else None, "" if honoured else "refused")


def test_signal_is_chosen_only_where_the_agent_honoured_it():
    both = (result(TurnEndMode.SIGNAL, True), result(TurnEndMode.SILENCE, True))
    published = (result(TurnEndMode.SIGNAL, False), result(TurnEndMode.SILENCE, True))
    assert chosen_turn_end(both) is TurnEndMode.SIGNAL
    assert chosen_turn_end(published) is TurnEndMode.SILENCE
    assert chosen_turn_end((result(TurnEndMode.SIGNAL, False),)) is None
    # A signal turn much slower than the silence tail's was ended by the agent's timers, not the signal.
    late = DialectResult(TurnEndMode.SIGNAL, True, 4.0, "")
    assert chosen_turn_end((late, result(TurnEndMode.SILENCE, True))) is TurnEndMode.SILENCE
    assert chosen_turn_end((late, result(TurnEndMode.SILENCE, False))) is TurnEndMode.SIGNAL


def test_the_environment_lines_follow_the_findings():
    settings = Settings(_env_file=None, ptt_silence_ms=600)  # type: ignore[call-arg]
    findings = ElevenLabsFindings(
        (result(TurnEndMode.SIGNAL, False), result(TurnEndMode.SILENCE, True)), True, False
    )
    assert env_lines(settings, findings) == [
        "TALKGATE_PTT_TURN_END=silence",
        "TALKGATE_PTT_SILENCE_MS=600",
        "TALKGATE_KEEPALIVE=user_activity",
        "ELEVENLABS_PUBLIC_AGENTS=false",
        "TALKGATE_MEDIA_STREAMING=false",
    ]


def test_the_report_is_a_table_by_section_with_no_secret_and_a_verdict():
    report = Report()
    report.add("configuration", "TALKGATE_JWT_SECRET", Status.OK, "set")
    report.add("ElevenLabs", "ELEVENLABS_API_KEY", Status.FAIL, "refused key sk_live_abcdef\nHTTP 401")
    report.env_lines = ["TALKGATE_PTT_TURN_END=silence"]
    text = render(report, ["sk_live_abcdef"])
    assert text.splitlines() == [
        "configuration",
        "  ✓ TALKGATE_JWT_SECRET  set",
        "",
        "ElevenLabs",
        "  ✗ ELEVENLABS_API_KEY   refused key *** HTTP 401",
        "",
        "Set these environment lines (.env):",
        "  TALKGATE_PTT_TURN_END=silence",
        "",
        "talkgate doctor: 1 problem",
    ]
    assert report.exit_code == 1


def test_a_late_signal_turn_is_reported_as_not_the_signal():
    report = Report()
    late = DialectResult(TurnEndMode.SIGNAL, True, 4.0, "")
    report_dialects((late, DialectResult(TurnEndMode.SILENCE, True, 0.9, "")), report)
    assert [(c.name, c.status) for c in report.checks] == [
        ("turn end: signal", Status.WARN),
        ("turn end: silence", Status.OK),
    ]
    assert "4000 ms after the release, later than the silence tail's" in report.checks[0].reason
