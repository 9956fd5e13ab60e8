"""Avatar mode in a real Chromium with a fake microphone, against `talkgate serve` with the
simulator: the avatar's push-to-talk command cycle, a refused start, a start that is never
acknowledged, and a room the page cannot join; no microphone audio ever leaves the page outside a
window the avatar opened."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.support.audio import best_correlation
from tests.support.browser import (
    CYCLE,
    WAIT_MS,
    connect_avatar,
    hold_button,
    new_page,
    screenshot,
    seen_by_simulator,
    simulator_session,
)
from tests.support.recordings import wav_pcm
from tests.support.timing import TIMEOUT, poll_until

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


VIEWPORTS = {
    "desktop": ({"width": 1000, "height": 900}, False),
    "phone": ({"width": 390, "height": 844}, True),
}
RATE = 16000
CLOCK = "window.talkgate.conversation.recording.now()"  # seconds into the call's recording


def level(pcm: np.ndarray, start_s: float, end_s: float) -> float:
    """RMS of a stretch of the recording, in PCM16 units."""
    part = pcm[int(start_s * RATE) : int(end_s * RATE)].astype(np.float64)
    assert len(part) > RATE // 10, (start_s, end_s)
    return float(np.sqrt(np.mean(part**2)))


def the_call(talkgate, page, cid: str) -> tuple[dict, bytes]:
    jwt = page.evaluate("sessionStorage.getItem('talkgate.token')")
    auth = {"Authorization": f"Bearer {jwt}"}
    call = httpx.get(f"{talkgate.url}/api/calls/{cid}", headers=auth).json()
    audio = httpx.get(f"{talkgate.url}/api/calls/{cid}/audio", headers=auth)
    return call, audio.content


@pytest.mark.parametrize("device", ["desktop", "phone"])
def test_an_avatar_call_has_a_recording_of_both_sides(device, chromium, talkgate):
    """The page records the microphone and the avatar's voice, uploads them as the call goes, and
    the call log plays back both: the user's speech while the button was held, then the avatar's
    (the simulator's avatar speaks the turn back), each where it was heard."""
    viewport, touch = VIEWPORTS[device]
    page = new_page(chromium, viewport, touch=touch)
    try:
        connect_avatar(page, talkgate.url)
        picture = page.locator("#avatar-video img")
        picture.wait_for(state="visible", timeout=WAIT_MS)  # the simulator's stand-in avatar
        box = picture.bounding_box()
        assert box and 100 <= box["width"] <= viewport["width"] and box["x"] >= 0
        page.wait_for_timeout(600)  # the person looks at the avatar before talking: silence
        pressed = page.evaluate(CLOCK)
        hold_button(page, 2.5)
        released = page.evaluate(CLOCK)
        page.wait_for_function(
            """window.talkgate.stats.transcripts.some(t => t.role === 'agent')
               && window.talkgate.player.stats.chunks > 0 && !window.talkgate.player.playing""",
            timeout=WAIT_MS,
        )
        heard_s = seen_by_simulator(page)["audioBytes"] / (2 * RATE)
        screenshot(page, f"talk-avatar-recording-{device}")
        cid = page.evaluate("window.talkgate.conversationId")
        page.click("#connect")
        page.wait_for_function("window.talkgate.state === 'idle'", timeout=WAIT_MS)
        call, blob = the_call(talkgate, page, cid)
        # The call page plays it back like any other call's recording.
        page.goto(f"{talkgate.url}/calls")
        row = page.locator(f"tr[data-id='{cid}']")
        assert "app upload" in row.inner_text()
        row.click()
        page.wait_for_function(
            f"window.talkgateCalls.shown && window.talkgateCalls.shown.id === '{cid}'"
            " && window.talkgateCalls.shown.peaks > 0",
            timeout=WAIT_MS,
        )
        assert page.locator("#player").is_visible() and page.locator("#no-recording").is_hidden()
        screenshot(page, f"calls-avatar-recording-{device}")
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        page.context.close()
    assert call["recording"] == "ready" and call["audioSource"] == "client_chunks"
    assert call["audioBytes"] == len(blob) and call["noRecordingReason"] is None
    pcm = np.frombuffer(wav_pcm(blob), dtype="<i2")
    assert len(pcm) / RATE >= released + heard_s  # the whole call, up to its end
    quiet = level(pcm, 0.1, pressed - 0.05)
    user = level(pcm, pressed + 0.6, released - 0.1)
    avatar = level(pcm, released + 0.5, released + heard_s - 0.1)
    assert quiet < 30 and user > 300 and avatar > 300, (quiet, user, avatar)
    # The avatar's part is its voice: the user's turn played back, found again after the release
    # (the turn held before its window opened a little silence, so the copy may align early). Not
    # r = 1: a busy page plays the avatar's frames with small gaps, and the recording keeps them.
    spoken = pcm[int(pressed * RATE) : int(released * RATE)].tobytes()
    r, lag = best_correlation(spoken, pcm[int(released * RATE) :].tobytes(), max_lag=2 * RATE)
    assert r >= 0.8 and -1.0 <= lag / RATE <= 1.0, (r, lag / RATE)


def test_a_closed_tab_ends_the_avatar_call_and_keeps_its_recording(page, talkgate):
    connect_avatar(page, talkgate.url)
    hold_button(page, 1.5)
    page.wait_for_function("window.talkgate.stats.transcripts.some(t => t.role === 'agent')", timeout=WAIT_MS)
    cid = page.evaluate("window.talkgate.conversationId")
    jwt = page.evaluate("sessionStorage.getItem('talkgate.token')")
    where = simulator_session(page)
    page.close()  # no Disconnect: the tab goes away
    auth = {"Authorization": f"Bearer {jwt}"}

    def call() -> dict:
        return httpx.get(f"{talkgate.url}/api/calls/{cid}", headers=auth).json()

    poll_until(lambda: call()["status"] == "ended", TIMEOUT, what="the closed tab's call ending")
    call = call()
    blob = httpx.get(f"{talkgate.url}/api/calls/{cid}/audio", headers=auth).content
    assert call["endReason"] == "user_disconnected" and call["recording"] == "ready"
    assert call["audioBytes"] == len(blob)
    pcm = np.frombuffer(wav_pcm(blob), dtype="<i2")
    assert len(pcm) >= 1.5 * RATE and np.abs(pcm).max() > 3000  # the turn is in it
    assert seen_by_simulator(page, where)["stoppedReason"] == "USER_DISCONNECTED"


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


def test_a_room_the_page_cannot_join_is_a_failed_call_that_never_connected(page, talkgate):
    """The session starts but its room refuses the page (a wrong room token): the call log says the
    call never connected, not that a user hung up, and keeps no recording of the page's silence."""

    def spoiled_token(route) -> None:
        answer = route.fetch()
        body = answer.json()
        body["livekitToken"] = "not-the-room-token"
        route.fulfill(response=answer, json=body)

    page.route("**/api/liveavatar/session", spoiled_token)
    page.goto(talkgate.url)
    page.click("#dev-signin")
    page.wait_for_selector('#mode option[value="avatar"]:not([hidden])', state="attached", timeout=WAIT_MS)
    page.select_option("#mode", "avatar")
    page.click("#connect")
    page.wait_for_function("window.talkgate.state === 'error'", timeout=WAIT_MS)
    jwt = page.evaluate("sessionStorage.getItem('talkgate.token')")
    auth = {"Authorization": f"Bearer {jwt}"}

    def newest() -> dict:
        return httpx.get(f"{talkgate.url}/api/calls?limit=1", headers=auth).json()["calls"][0]

    poll_until(lambda: newest()["status"] != "active", TIMEOUT, what="the unjoined call ending")
    call = newest()
    assert (call["status"], call["endReason"], call["recording"]) == ("failed", "never_connected", "none")
    assert "never connected" in call["noRecordingReason"]
