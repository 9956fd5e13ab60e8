"""The web page in a real Chromium with a fake microphone: push-to-talk in relay and direct mode,
spacebar and toggle, the call-log page, and the recording checked against the spoken input."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest
from pydantic import SecretStr

from talkgate.auth import TokenVerifier
from talkgate.settings import Settings
from tests.support.audio import best_correlation
from tests.support.browser import (
    WAIT_MS,
    hold_button,
    new_page,
    screenshot,
    sign_in_and_connect,
    wait_for_reply,
)
from tests.support.recordings import wav_pcm
from tests.support.servers import AGENT_ID, SIM_KEY, start_simulator

JWT_SECRET = "page-test-jwt-secret-0123456789abcdef"

pytestmark = [pytest.mark.browser, pytest.mark.realtime]  # a real browser, at a person's pace


def recording_of(page, base: str, conversation_id: str) -> tuple[dict, bytes]:
    jwt = page.evaluate("sessionStorage.getItem('talkgate.token')")
    headers = {"Authorization": f"Bearer {jwt}"}
    call = httpx.get(f"{base}/api/calls/{conversation_id}", headers=headers).json()
    audio = httpx.get(f"{base}/api/calls/{conversation_id}/audio", headers=headers)
    assert audio.status_code == 200, audio.text
    return call, wav_pcm(audio.content)


def assert_speech_recorded(pcm: bytes, speech: bytes) -> None:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    assert np.sqrt(np.mean(samples**2)) > 300, "the recording is silent"
    reference = speech[int(0.4 * 32000) : int(2.2 * 32000)]  # spoken while the button was held
    r, lag = best_correlation(reference, pcm, max_lag=4 * 16000)
    # 0.98 on a quiet machine; in a loaded full run the relayed recording has measured 0.80-0.84
    # (cause under investigation: see docs/recording.md "Not yet"); a wrong or silent recording
    # gives r near 0.
    assert r >= 0.75, f"recording does not match the microphone input: r={r:.3f} at lag {lag}"


def check_call_page(page, base: str, conversation_id: str, source: str, name: str, transcript: bool) -> None:
    page.goto(f"{base}/calls")
    row = page.locator(f"tr[data-id='{conversation_id}']")
    row.wait_for(timeout=WAIT_MS)
    assert source in row.inner_text()
    row.click()
    page.wait_for_function(
        f"window.talkgateCalls.shown && window.talkgateCalls.shown.id === '{conversation_id}'"
        " && window.talkgateCalls.shown.peaks > 0",
        timeout=WAIT_MS,
    )
    if transcript:  # relayed through talkgate, or posted by the page in direct mode
        assert "I heard" in page.locator("#detail-transcript").inner_text()
    if source == "relay":  # turn latencies: talkgate measures them on the turns it relays
        cells = page.locator("#turns tbody tr").first.locator("td").all_inner_texts()
        assert cells[0] == "1" and all(c.endswith(" ms") and int(c[:-3]) >= 0 for c in cells[1:]), cells
    else:  # direct mode: talkgate did not see the turns
        assert page.locator("#detail-turns").is_hidden()
    src = page.get_attribute("#player", "src")
    assert src and src.startswith(f"/api/recordings/{conversation_id}.wav?")
    # The player's link streams with Range, so seeking works without fetching the whole file.
    part = httpx.get(f"{base}{src}", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    screenshot(page, name)


def test_relay_mode_hold_to_talk_transcript_echo_call_log_and_recording(page, talkgate, speech_wav):
    sign_in_and_connect(page, talkgate.url, "relay")
    hold_button(page, 3.0)
    wait_for_reply(page, 1)
    stats = page.evaluate("window.talkgate.stats")
    assert stats["turns"] == 1 and stats["chunksSent"] >= 25  # 3 s in chunks of about 100 ms
    assert page.evaluate("window.talkgate.player.stats.peak") > 0.01  # the echoed voice played
    transcript = page.locator("#transcript").inner_text()
    assert "s of speech" in transcript and "I heard" in transcript
    screenshot(page, "talk-relay")
    cid = page.evaluate("window.talkgate.conversationId")
    page.click("#connect")  # disconnect: the relay ends and its recording is stored
    page.wait_for_function("window.talkgate.state === 'idle'", timeout=WAIT_MS)
    check_call_page(page, talkgate.url, cid, "relay", "calls-relay", transcript=True)
    call, pcm = recording_of(page, talkgate.url, cid)
    assert call["audioSource"] == "relay"
    assert_speech_recorded(pcm, speech_wav[1])
    assert page.errors == []  # type: ignore[attr-defined]


def test_direct_mode_speaks_the_provider_protocol_and_the_media_socket_records(page, talkgate, speech_wav):
    sign_in_and_connect(page, talkgate.url, "direct")
    hold_button(page, 3.0)
    wait_for_reply(page, 1)
    cid = page.evaluate("window.talkgate.conversationId")
    assert cid.startswith("conv_")
    page.click("#connect")  # ends the provider socket, then POST /api/calls/{id}/end
    page.wait_for_function("window.talkgate.state === 'idle'", timeout=WAIT_MS)
    check_call_page(page, talkgate.url, cid, "media stream", "calls-direct", transcript=True)
    call, pcm = recording_of(page, talkgate.url, cid)
    assert call["audioSource"] == "media_stream"
    assert [t["role"] for t in call["transcript"]] == ["user", "agent"]  # posted by the page, in order
    assert_speech_recorded(pcm, speech_wav[1])
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_page_says_the_agent_speaks_while_it_is_heard_and_a_press_silences_it(page, talkgate):
    """The status line follows the player (the package's BrowserPlayer, attached to the
    conversation): "Agent speaking" while the reply plays, ready once it has; a press during the
    reply (a barge-in) drops what is queued before the microphone opens."""
    sign_in_and_connect(page, talkgate.url, "relay")
    hold_button(page, 3.0)  # the simulator echoes the turn: about 3 s of reply, queued at once
    page.wait_for_function(
        "window.talkgate.state === 'agent' && window.talkgate.player.playing", timeout=WAIT_MS
    )
    assert page.locator("#state").inner_text() == "Agent speaking"
    box = page.locator("#ptt").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()  # the agent is still speaking
    page.wait_for_function("window.talkgate.state === 'talking'", timeout=WAIT_MS)
    stats = page.evaluate("window.talkgate.player.stats")
    assert stats["flushed"] >= 1 and stats["ended"] + stats["flushed"] == stats["chunks"], stats
    assert page.evaluate("window.talkgate.player.playing") is False
    page.wait_for_timeout(1500)  # speaking over the agent
    page.mouse.up()
    wait_for_reply(page, 2)
    page.wait_for_function(
        "window.talkgate.state === 'ready' && !window.talkgate.player.playing", timeout=WAIT_MS
    )
    assert page.locator("#state").inner_text() == "Ready: hold to talk"
    after = page.evaluate("window.talkgate.player.stats")
    assert after["chunks"] > stats["chunks"] and after["ended"] + after["flushed"] == after["chunks"]
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_call_the_provider_ends_plays_the_agents_last_words_out_before_the_page_says_ended(
    chromium, serve_talkgate
):
    """The provider closes the conversation (its maximum duration) while the agent's reply is still
    playing: the reply is heard to its end, the page says so, and says "Ended" only once no audio
    flows. Pressing Disconnect, the user's own end, still silences it at once (the test above)."""
    simulator = start_simulator(max_duration_s=6.0)  # the close lands inside the 3 s echoed reply
    page = None
    try:
        server = serve_talkgate(
            ELEVENLABS_API_KEY=SIM_KEY,
            ELEVENLABS_BASE_URL=simulator.http_url,
            ELEVENLABS_AGENT_ID=AGENT_ID,
            TALKGATE_PTT_TURN_END="signal",  # the reply right after the release
            TALKGATE_JWT_SECRET=JWT_SECRET,
        )
        token = TokenVerifier(Settings(_env_file=None, jwt_secret=SecretStr(JWT_SECRET))).issue("erin")  # type: ignore[call-arg]
        page = new_page(chromium, {"width": 1000, "height": 900})
        sign_in_and_connect(page, server.url, "relay", token=token)
        hold_button(page, 3.0)
        page.wait_for_function(
            "window.talkgate.state === 'farewell' && window.talkgate.player.playing", timeout=WAIT_MS
        )
        assert page.locator("#state").inner_text() == "Agent finishing (the call has ended)"
        assert page.locator("#connect").inner_text() == "Connect"
        assert page.locator("#ptt").is_disabled()
        page.wait_for_function("window.talkgate.state === 'idle'", timeout=WAIT_MS)
        assert page.evaluate("window.talkgate.player.playing") is False
        stats = page.evaluate("window.talkgate.player.stats")
        assert stats["flushed"] == 0 and stats["ended"] == stats["chunks"] > 0, stats
        assert page.locator("#state").inner_text().startswith("Ended (")
    finally:
        if page is not None:
            page.context.close()
        simulator.stop()


def test_spacebar_hold_and_toggle_mode_each_make_a_turn(page, talkgate):
    sign_in_and_connect(page, talkgate.url, "relay")
    page.keyboard.down("Space")
    page.wait_for_function("window.talkgate.state === 'talking'", timeout=WAIT_MS)
    page.wait_for_timeout(1500)  # speaking
    page.keyboard.up("Space")
    wait_for_reply(page, 1)

    page.select_option("#ptt-style", "toggle")
    page.click("#ptt")
    page.wait_for_function("window.talkgate.state === 'talking'", timeout=WAIT_MS)
    assert page.get_attribute("#ptt", "aria-pressed") == "true"
    page.wait_for_timeout(1500)  # speaking, hands free
    page.click("#ptt")
    wait_for_reply(page, 2)
    assert page.evaluate("window.talkgate.stats.turns") == 2
    assert page.get_attribute("#ptt", "aria-pressed") == "false"
    screenshot(page, "talk-toggle")
    assert page.errors == []  # type: ignore[attr-defined]


def test_the_page_explains_a_refused_sign_in(page, talkgate):
    page.goto(talkgate.url)
    page.fill("#token-input", "not-a-token")
    page.click("#token-form button")
    assert page.locator("#signin-error").inner_text() == "That is not a JWT."
    # Refused by talkgate at sign-in, before any connection: not signed with this server's key.
    forged = "e30." + base64.urlsafe_b64encode(b'{"sub":"x","exp":9999999999}').decode().rstrip("=") + ".sig"
    page.fill("#token-input", forged)
    page.click("#token-form button")
    page.wait_for_function("document.getElementById('signin-error').textContent.length > 0", timeout=WAIT_MS)
    assert "not signed by this server's identity provider" in page.locator("#signin-error").inner_text()
    assert page.locator("#talk").is_hidden()
