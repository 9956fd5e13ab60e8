"""The talk page's controls as a new user meets them, on a desktop and a 390x844 touch screen: the
push-to-talk button's words follow the chosen style, no select cuts its text off, the level meter
reads zero once the microphone is closed, and a refused sign-in says what failed."""

from __future__ import annotations

import time

import jwt
import pytest

from talkgate.settings import DEV_JWT_SECRET
from tests.support.browser import WAIT_MS, new_page, screenshot, sign_in_and_connect, wait_for_reply

pytestmark = [pytest.mark.browser, pytest.mark.realtime]

VIEWPORTS = {
    "desktop": ({"width": 1000, "height": 900}, False),
    "phone": ({"width": 390, "height": 844}, True),
}

# How much of each select's box each option's text needs: text width against the room inside the
# box (its width less padding, border and the drop-down arrow); and where the box ends against the
# inside edge of its card.
SELECT_FIT = """
(() => {
  const ctx = document.createElement("canvas").getContext("2d");
  const out = [];
  for (const select of document.querySelectorAll("select")) {
    const card = select.closest(".card");
    const edge = card.getBoundingClientRect().right - parseFloat(getComputedStyle(card).paddingRight);
    const style = getComputedStyle(select);
    ctx.font = style.font;
    const room = select.getBoundingClientRect().width - parseFloat(style.paddingLeft)
      - parseFloat(style.paddingRight) - parseFloat(style.borderLeftWidth)
      - parseFloat(style.borderRightWidth) - 20;
    for (const option of select.options) {
      if (option.hidden) continue;
      out.push({ id: select.id, text: option.text, need: ctx.measureText(option.text).width, room,
                 right: select.getBoundingClientRect().right, edge });
    }
  }
  return out;
})()
"""


@pytest.fixture(params=sorted(VIEWPORTS))
def screen(request, chromium):
    viewport, touch = VIEWPORTS[request.param]
    page = new_page(chromium, viewport, touch=touch)
    page.screen_name = request.param  # type: ignore[attr-defined]
    yield page
    page.context.close()


def press(page) -> None:
    """A tap on a touch screen, a click on a desktop."""
    if page.screen_name == "phone":  # type: ignore[attr-defined]
        page.tap("#ptt")
    else:
        page.click("#ptt")


def test_the_button_says_tap_in_toggle_mode_and_hold_in_hold_mode(screen, talkgate):
    page = screen
    sign_in_and_connect(page, talkgate.url, "relay", "toggle")
    assert page.locator("#ptt").inner_text() == "Tap to talk"
    assert page.locator("#state").inner_text() == "Ready: tap to talk"
    hint = page.locator("#hint").inner_text()
    assert "Tap the button" in hint
    assert ("spacebar" in hint) is (page.screen_name == "desktop"), hint  # type: ignore[attr-defined]
    press(page)
    page.wait_for_function("window.talkgate.state === 'talking'", timeout=WAIT_MS)
    assert page.locator("#ptt").inner_text() == "Tap to stop"
    screenshot(page, f"controls-{page.screen_name}-toggle-talking")  # type: ignore[attr-defined]
    page.wait_for_timeout(1200)  # speaking, hands free
    press(page)
    wait_for_reply(page, 1)
    page.wait_for_function("document.getElementById('ptt').textContent === 'Tap to talk'", timeout=WAIT_MS)

    page.select_option("#ptt-style", "hold")
    assert page.locator("#ptt").inner_text() == "Hold to talk"
    hint = page.locator("#hint").inner_text()
    assert hint.startswith("Hold the button") and ("spacebar" in hint) is (page.screen_name == "desktop")  # type: ignore[attr-defined]
    page.wait_for_function("window.talkgate.state === 'ready'", timeout=WAIT_MS)
    assert page.locator("#state").inner_text() == "Ready: hold to talk"
    assert page.errors == []  # type: ignore[attr-defined]


def test_each_call_s_lines_stand_under_a_line_of_their_own(screen, talkgate):
    """A second call on the same page: the first call's lines stay, apart from the second's."""
    page = screen
    sign_in_and_connect(page, talkgate.url, "relay", "toggle")
    press(page)
    page.wait_for_function("window.talkgate.state === 'talking'", timeout=WAIT_MS)
    page.wait_for_timeout(1200)  # speaking
    press(page)
    wait_for_reply(page, 1)
    page.click("#connect")  # disconnect
    page.wait_for_function("window.talkgate.state === 'idle'", timeout=WAIT_MS)
    page.click("#connect")  # a second call
    page.wait_for_function("window.talkgate.state === 'ready'", timeout=WAIT_MS)
    classes = page.locator("#transcript li").evaluate_all("lines => lines.map(l => l.className)")
    assert classes[0] == "call" and classes[-1] == "call" and classes.count("call") == 2, classes
    assert {"user", "agent"} <= set(classes[1:-1]), classes
    assert page.locator("#transcript li.call").first.inner_text().startswith("Relayed call, ")
    screenshot(page, f"controls-{page.screen_name}-second-call")  # type: ignore[attr-defined]
    assert page.errors == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("width", [None, 320])
def test_no_select_cuts_off_its_text(screen, talkgate, width):
    page = screen
    if width is not None:  # and on the narrowest phones still in use
        if page.screen_name != "phone":  # type: ignore[attr-defined]
            pytest.skip("a narrow phone only")
        page.set_viewport_size({"width": width, "height": 568})
    page.goto(talkgate.url)
    page.click("#dev-signin")
    page.wait_for_selector("#talk:not([hidden])")
    page.wait_for_selector('#mode option[value="avatar"]:not([hidden])', state="attached", timeout=WAIT_MS)
    for style in ("hold", "toggle"):
        page.select_option("#ptt-style", style)
        screenshot(page, f"controls-{page.screen_name}-{width or 'full'}-{style}")  # type: ignore[attr-defined]
        for fit in page.evaluate(SELECT_FIT):
            assert fit["need"] <= fit["room"], f"{fit['id']}: {fit['text']!r} is cut off: {fit}"
            assert fit["right"] <= fit["edge"] + 0.5, f"{fit['id']} runs out of its card: {fit}"


def test_the_level_meter_reads_zero_after_a_turn_and_after_a_disconnect(screen, talkgate):
    page = screen
    sign_in_and_connect(page, talkgate.url, "relay", "toggle")
    level = "document.getElementById('level').style.width"
    press(page)
    page.wait_for_function(f"parseFloat({level}) > 0", timeout=WAIT_MS)  # the fake microphone speaks
    press(page)
    wait_for_reply(page, 1)
    page.wait_for_function(f"{level} === '0%'", timeout=WAIT_MS)

    press(page)  # talking again, then disconnected mid-turn
    page.wait_for_function(f"parseFloat({level}) > 0", timeout=WAIT_MS)
    page.click("#connect")
    page.wait_for_function("window.talkgate.state === 'idle'", timeout=WAIT_MS)
    assert page.evaluate(level) == "0%"
    screenshot(page, f"controls-{page.screen_name}-disconnected")  # type: ignore[attr-defined]


def test_a_refused_sign_in_says_whether_it_expired_or_was_not_signed_here(screen, talkgate):
    page = screen
    now = int(time.time())
    expired = jwt.encode({"sub": "ann", "iat": now - 7200, "exp": now - 3600}, DEV_JWT_SECRET)
    elsewhere = jwt.encode({"sub": "ann", "iat": now, "exp": now + 3600}, "another-server-secret-" * 2)
    page.goto(talkgate.url)
    for token, words in (
        (expired, "Your sign-in has expired."),
        (elsewhere, "not signed by this server's identity provider"),
        (expired.rsplit(".", 1)[0] + ".AAAA", "not signed by this server's identity provider"),
        (expired[:-5] + "%%%%%", "not a complete JWT"),
    ):
        page.fill("#token-input", token)
        page.click("#token-form button")
        page.wait_for_function(
            "document.getElementById('signin-error').textContent.length > 0", timeout=WAIT_MS
        )
        shown = page.locator("#signin-error").inner_text()
        assert words in shown, (token, shown)
        if "expired" not in words:
            assert "expired" not in shown, shown  # a bad signature is not an expired sign-in
        assert page.locator("#talk").is_hidden()
    screenshot(page, f"controls-{page.screen_name}-signin-refused")  # type: ignore[attr-defined]

    # A token kept from an earlier visit that has run out: the sign-in form says so at once.
    page.evaluate(f"sessionStorage.setItem('talkgate.token', {expired!r})")
    page.reload()
    page.wait_for_selector("#signin:not([hidden])")
    assert "Your sign-in has expired." in page.locator("#signin-error").inner_text()
