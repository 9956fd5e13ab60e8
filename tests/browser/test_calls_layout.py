"""The call-log page: on a phone the calls are cards (every field, nothing scrolls sideways) and a
relay call's turn latencies stay visible; the waveform comes from the peaks summary (never the WAV),
seeks on a click or tap and follows playback; calls beyond the first page are reached with Newer /
Older; a call without a recording says so plainly in the list and on its page."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.support.browser import hold_button, new_page, screenshot, sign_in_and_connect, wait_for_reply

pytestmark = [pytest.mark.browser, pytest.mark.realtime]

PHONE = {"width": 390, "height": 844}
WAIT_MS = 20_000


def test_the_call_log_fits_a_phone_and_keeps_every_latency_column(chromium, talkgate):
    page = new_page(chromium, PHONE, touch=True)
    try:
        sign_in_and_connect(page, talkgate.url, "relay")
        hold_button(page, 1.5)
        wait_for_reply(page, 1)
        cid = page.evaluate("window.talkgate.conversationId")
        page.click("#connect")
        page.wait_for_function("window.talkgate.state === 'idle'", timeout=WAIT_MS)

        page.goto(f"{talkgate.url}/calls")
        row = page.locator(f"tr[data-id='{cid}']")
        row.wait_for(timeout=WAIT_MS)
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"
        table = page.evaluate("[document.querySelector('#calls').scrollWidth, innerWidth]")
        assert table[0] <= table[1] - 16, f"the calls table does not fit the screen: {table}"
        box = page.evaluate("(b => [b.scrollWidth, b.clientWidth])(document.querySelector('.calls-list'))")
        assert box[0] <= box[1], f"the calls list scrolls sideways: {box}"
        fields = row.locator("td")
        assert fields.count() == 5 and all(fields.nth(i).is_visible() for i in range(5)), "a field is hidden"
        names = row.evaluate("r => [...r.cells].map(c => getComputedStyle(c, '::before').content)")
        assert names == ['"Date"', '"Duration"', '"Agent"', '"Recording"', '"Status"'], names  # each named
        row.click()
        page.locator("#detail-turns").wait_for(timeout=WAIT_MS)
        cells = page.locator("#turns tbody tr").first.locator("td")
        assert cells.count() == 3
        assert all(cells.nth(i).is_visible() for i in range(3)), "a latency column is hidden"
        widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert widths[0] <= widths[1], f"the call's detail scrolls the page sideways: {widths}"
        screenshot(page, "calls-phone")
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        page.context.close()


def test_a_call_without_a_recording_says_so_plainly(chromium, talkgate):
    page = new_page(chromium, PHONE, touch=True)
    try:
        page.goto(talkgate.url)
        page.click("#dev-signin")
        page.wait_for_selector("#talk:not([hidden])")
        token = page.evaluate("sessionStorage.getItem('talkgate.token')")
        headers = {"Authorization": f"Bearer {token}"}
        body = {"voice": "default", "conversationId": "conv_never_opened"}
        assert httpx.post(f"{talkgate.url}/api/elevenlabs-signed-url", headers=headers, json=body).is_success
        ended = httpx.post(f"{talkgate.url}/api/calls/conv_never_opened/end", headers=headers).json()
        assert ended["audioUrl"] is None  # nothing reached talkgate and the provider has nothing

        page.goto(f"{talkgate.url}/calls")
        row = page.locator("tr[data-id='conv_never_opened']")
        assert "No recording" in row.inner_text()  # plainly, in the list too
        row.click()
        page.wait_for_function(
            "window.talkgateCalls.shown && window.talkgateCalls.shown.id === 'conv_never_opened'",
            timeout=WAIT_MS,
        )
        assert "has no recording" in page.locator("#no-recording").inner_text()
        assert page.locator("#player").is_hidden() and page.locator("#waveform").is_hidden()
        screenshot(page, "calls-phone-no-recording")
        assert page.errors == []  # type: ignore[attr-defined]
    finally:
        page.context.close()


TONE = np.full(1600, 3000, dtype="<i2").tobytes()  # a tenth of a second, not silent (silence is not kept)
VIEWPORTS = {"desktop": ({"width": 1000, "height": 900}, False), "phone": (PHONE, True)}


@pytest.fixture(params=sorted(VIEWPORTS))
def screen(request, chromium):
    viewport, touch = VIEWPORTS[request.param]
    page = new_page(chromium, viewport, touch=touch)
    page.screen_name = request.param  # type: ignore[attr-defined]
    yield page
    page.context.close()


def signed_in(page, base: str) -> dict[str, str]:
    page.goto(base)
    page.click("#dev-signin")
    page.wait_for_selector("#talk:not([hidden])")
    token = page.evaluate("sessionStorage.getItem('talkgate.token')")
    return {"Authorization": f"Bearer {token}"}


def make_call(base: str, headers: dict[str, str], cid: str, pcm: bytes | None) -> None:
    """A direct call whose page uploaded ``pcm`` (its recording), or nothing (no recording)."""
    body = {"voice": "default", "conversationId": cid}
    assert httpx.post(f"{base}/api/elevenlabs-signed-url", headers=headers, json=body).is_success
    if pcm:
        upload = {**headers, "content-type": "application/octet-stream"}
        for at in range(0, len(pcm), 512_000):
            r = httpx.post(f"{base}/api/calls/{cid}/chunks", headers=upload, content=pcm[at : at + 512_000])
            assert r.is_success, r.text
    assert httpx.post(f"{base}/api/calls/{cid}/end", headers=headers).is_success


def test_the_waveform_comes_from_peaks_seeks_and_follows_playback(screen, talkgate):
    page = screen
    headers = signed_in(page, talkgate.url)
    t = np.arange(16000 * 8) / 16000  # 8 s: a tone that swells and fades twice
    make_call(
        talkgate.url,
        headers,
        "conv_wave",
        (np.sin(2 * np.pi * 220 * t) * 12000 * np.abs(np.sin(t * np.pi / 4))).astype("<i2").tobytes(),
    )
    requests: list[tuple[str, str]] = []
    page.on("request", lambda r: requests.append((r.resource_type, r.url)))
    page.goto(f"{talkgate.url}/calls")
    page.locator("tr[data-id='conv_wave']").click()
    page.wait_for_function(
        "window.talkgateCalls.shown && window.talkgateCalls.shown.peaks > 0", timeout=WAIT_MS
    )

    peaks = [url for kind, url in requests if "/peaks?width=" in url]
    assert len(peaks) == 1, requests
    recording = (".wav", "/audio")  # the signed playback link, or the authenticated route
    fetched = [u for kind, u in requests if kind in ("fetch", "xhr") and u.split("?")[0].endswith(recording)]
    assert fetched == [], f"the page downloaded the recording itself: {fetched}"
    width = page.evaluate("document.getElementById('waveform').width")
    assert f"width={width}" in peaks[0]  # one slice per pixel column
    lit = page.evaluate(DRAWN)
    assert lit > 0.1, f"nothing drawn: {lit}"

    box = page.locator("#waveform").bounding_box()
    where = 0.5 if page.screen_name == "desktop" else 0.25  # type: ignore[attr-defined]
    point = {"x": box["width"] * where, "y": box["height"] / 2}
    if page.screen_name == "phone":  # type: ignore[attr-defined]
        page.locator("#waveform").tap(position=point)
    else:
        page.locator("#waveform").click(position=point)
    page.wait_for_function("document.getElementById('player').readyState >= 1", timeout=WAIT_MS)
    now = page.evaluate("document.getElementById('player').currentTime")
    assert abs(now - 8 * where) < 0.25, f"seeked to {now} s, not {8 * where} s"
    assert abs(page.evaluate("window.talkgateCalls.waveform.playhead") - where) < 0.03
    assert page.get_attribute("#waveform", "aria-valuenow") == str(round(8 * where))
    screenshot(page, f"calls-{page.screen_name}-waveform-seeked")  # type: ignore[attr-defined]

    page.evaluate("document.getElementById('player').play()")  # the playhead follows playback
    page.wait_for_function(f"window.talkgateCalls.waveform.playhead > {where + 0.08}", timeout=WAIT_MS)
    page.evaluate("document.getElementById('player').pause()")
    page.locator("#waveform").focus()
    page.keyboard.press("Home")
    assert page.evaluate("document.getElementById('player').currentTime") == 0
    assert page.evaluate("window.talkgateCalls.waveform.playhead") == 0
    assert page.errors == []  # type: ignore[attr-defined]


# The share of the canvas's pixels that are not its background: the waveform was drawn.
DRAWN = """
(() => {
  const c = document.getElementById("waveform");
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let lit = 0;
  for (let i = 0; i < data.length; i += 4) if (data[i] > 0x40 || data[i + 2] > 0x40) lit += 1;
  return lit / (data.length / 4);
})()
"""


def test_calls_beyond_the_first_page_are_reached_with_newer_and_older(screen, talkgate):
    page = screen
    headers = signed_in(page, talkgate.url)
    for i in range(105):  # every third with a recording
        make_call(talkgate.url, headers, f"conv_p{i:03d}", TONE if i % 3 == 0 else None)
    newest_first = [f"conv_p{i:03d}" for i in reversed(range(105))]
    page.goto(f"{talkgate.url}/calls")
    page.wait_for_function(
        "window.talkgateCalls.page && window.talkgateCalls.page.total === 105", timeout=WAIT_MS
    )
    shown = "[...document.querySelectorAll('#calls tbody tr')].map(r => r.dataset.id)"
    assert page.evaluate(shown) == newest_first[:50]
    assert page.locator("#page-info").inner_text() == "Calls 1\u201350 of 105"
    assert page.locator("#newer").is_disabled() and page.locator("#older").is_enabled()
    page.click("#older")
    page.wait_for_function("window.talkgateCalls.page.offset === 50", timeout=WAIT_MS)
    assert page.evaluate(shown) == newest_first[50:100]
    page.click("#older")
    page.wait_for_function("window.talkgateCalls.page.offset === 100", timeout=WAIT_MS)
    assert page.evaluate(shown) == newest_first[100:]
    assert page.locator("#page-info").inner_text() == "Calls 101\u2013105 of 105"
    assert page.locator("#older").is_disabled()
    texts = page.locator("#calls tbody tr").all_inner_texts()
    assert sum("No recording" in t for t in texts) == sum(int(c[-3:]) % 3 != 0 for c in newest_first[100:])
    widths = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: {widths}"
    screenshot(page, f"calls-{page.screen_name}-last-page")  # type: ignore[attr-defined]
    page.click("#newer")
    page.wait_for_function("window.talkgateCalls.page.offset === 50", timeout=WAIT_MS)
    assert page.evaluate(shown) == newest_first[50:100]
    assert page.errors == []  # type: ignore[attr-defined]
