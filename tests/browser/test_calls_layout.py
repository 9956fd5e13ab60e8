"""The call-log page on a phone: nothing scrolls the page sideways, and a relay call's turn latencies
stay visible (a rule meant for the calls table once hid the latency table's third column too)."""

from __future__ import annotations

import httpx
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
        page.locator("tr[data-id='conv_never_opened']").click()
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
