"""Avatar mode in a real Chromium with a fake microphone, against `talkgate serve` with the
simulator: the avatar's push-to-talk command cycle, a refused start, and a start that is never
acknowledged; no microphone audio ever leaves the page outside a window the avatar opened."""

from __future__ import annotations

import httpx
import pytest

from tests.support.browser import (
    CYCLE,
    WAIT_MS,
    connect_avatar,
    hold_button,
    screenshot,
    seen_by_simulator,
    simulator_session,
)

pytestmark = [pytest.mark.browser, pytest.mark.realtime]  # a real browser, at a person's pace


def fault(page, command: str, kind: str) -> None:
    base, sid = simulator_session(page)
    r = httpx.post(
        f"{base}/_simulator/liveavatar/sessions/{sid}/faults", json={"command": command, "fault": kind}
    )
    assert r.status_code == 200, r.text


def test_avatar_push_to_talk_cycle_transcripts_and_call_log(page, talkgate):
    connect_avatar(page, talkgate.url)
    hold_button(page, 2.5)
    page.wait_for_function(
        "window.talkgate.stats.transcripts.filter(t => t.role === 'agent').length >= 1", timeout=WAIT_MS
    )
    conversation = page.evaluate(
        "({log: window.talkgate.conversation.log, sent: window.talkgate.conversation.framesSent,"
        " dropped: window.talkgate.conversation.framesDropped, state: window.talkgate.conversation.state})"
    )
    assert conversation["log"] == CYCLE and conversation["state"] == "idle"
    assert conversation["sent"] >= 15  # about 2 s of 100 ms chunks inside the window
    seen = seen_by_simulator(page)
    assert seen["audioOutsideBytes"] == 0 and seen["audioBytes"] >= 15 * 3200
    assert seen["commands"] == ["user.start_push_to_talk", "user.stop_push_to_talk"]
    transcript = page.locator("#transcript").inner_text()
    assert "s of speech" in transcript and "I heard" in transcript
    screenshot(page, "talk-avatar")
    cid = page.evaluate("window.talkgate.conversationId")
    where = simulator_session(page)
    page.click("#connect")  # ends the session: talkgate stops it and closes the call log
    page.wait_for_function("window.talkgate.state === 'idle'", timeout=WAIT_MS)
    jwt = page.evaluate("sessionStorage.getItem('talkgate.token')")
    call = httpx.get(f"{talkgate.url}/api/calls/{cid}", headers={"Authorization": f"Bearer {jwt}"}).json()
    assert (
        call["provider"] == "liveavatar" and call["status"] == "ended" and call["endReason"] == "user_closed"
    )
    assert [t["role"] for t in call["transcript"]] == ["user", "agent"]
    assert seen_by_simulator(page, where)["stoppedReason"] == "USER_CLOSED"
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_refused_start_is_shown_and_the_next_press_works(page, talkgate):
    connect_avatar(page, talkgate.url)
    fault(page, "user.start_push_to_talk", "fail")
    hold_button(page, 1.5)
    page.wait_for_function("window.talkgate.stats.errors.length >= 1", timeout=WAIT_MS)
    assert "could not start listening" in page.locator("#error").inner_text()
    assert page.evaluate("window.talkgate.conversation.state") == "idle"
    assert page.evaluate("window.talkgate.conversation.framesSent") == 0  # the mic never opened
    seen = seen_by_simulator(page)
    assert seen["audioBytes"] == 0 and seen["audioOutsideBytes"] == 0
    hold_button(page, 1.5)  # the machine is back in a safe state: a new press is a normal turn
    page.wait_for_function(
        "window.talkgate.stats.transcripts.filter(t => t.role === 'user').length >= 1", timeout=WAIT_MS
    )
    screenshot(page, "talk-avatar-refused")
    assert seen_by_simulator(page)["audioBytes"] > 0


def test_a_start_never_acknowledged_times_out_to_a_safe_state(page, talkgate):
    connect_avatar(page, talkgate.url)
    fault(page, "user.start_push_to_talk", "silent")
    hold_button(page, 1.0)
    page.wait_for_function("window.talkgate.stats.errors.length >= 1", timeout=WAIT_MS)
    assert "did not answer the start of push-to-talk in time" in page.locator("#error").inner_text()
    log = page.evaluate("window.talkgate.conversation.log")
    # The start, then a stop to be sure (the window might yet open late); never any audio.
    assert log[:2] == [{"out": "user.start_push_to_talk"}, {"out": "user.stop_push_to_talk"}]
    assert all(entry == {"in": "user.push_to_talk_stop_failed"} for entry in log[2:])
    assert page.evaluate("window.talkgate.conversation.state") == "idle"
    assert seen_by_simulator(page)["audioBytes"] == 0
