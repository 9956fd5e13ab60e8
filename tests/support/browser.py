"""Driving the page in Debian's Chromium: pages, screenshots, waits and scripted browser APIs."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.servers import IN_CI
from tests.support.timing import scaled

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def require(thing: str, present: bool) -> None:
    """Skip a browser test whose system or npm package is missing, except in CI, where it fails."""
    if not present:
        if IN_CI:
            pytest.fail(f"{thing} is required in CI (`make test` installs it)")
        pytest.skip(f"{thing} is not installed")


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# getUserMedia under the test's control, as behind a permission prompt: in "hold" mode each call
# waits until the test calls window.__gum.grant(); "deny" rejects as a refused prompt does; "pass"
# answers at once. Every stream granted is kept, so a test can see whether its tracks were stopped.
HELD_GET_USER_MEDIA = """
(() => {
  const devices = navigator.mediaDevices;
  const real = devices.getUserMedia.bind(devices);
  const gum = { mode: "hold", calls: 0, held: [], streams: [] };
  gum.grant = () => gum.held.splice(0).map((go) => go()).length;
  gum.tracks = () => gum.streams.flatMap((s) => s.getTracks());
  gum.live = () => gum.tracks().filter((t) => t.readyState === "live").length;
  devices.getUserMedia = (constraints) => {
    gum.calls += 1;
    if (gum.mode === "deny") {
      return Promise.reject(new DOMException("Permission denied", "NotAllowedError"));
    }
    const open = () => real(constraints).then((stream) => (gum.streams.push(stream), stream));
    if (gum.mode === "pass") return open();
    return new Promise((resolve, reject) => gum.held.push(() => open().then(resolve, reject)));
  };
  window.__gum = gum;
})();
"""


# Each audio message a page puts on a WebSocket, with what the page's status said at that moment:
# socket.io's send_audio (relay), the provider's user_audio_chunk (direct), binary PCM to the avatar.
AUDIO_SENDS = """
(() => {
  const sends = [];
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    const text = typeof data === "string";
    const audio = text ? /"send_audio"|"user_audio_chunk"/.test(data) : !this.url.includes("socket.io");
    if (audio) sends.push(document.getElementById("state").dataset.state);
    return send.call(this, data);
  };
  window.__audioSends = sends;
})();
"""


def new_page(browser, viewport: dict[str, int], touch: bool = False, init_script: str | None = None):
    context = browser.new_context(viewport=viewport, has_touch=touch, is_mobile=touch)
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if msg.type == "error" and "favicon" not in msg.text else None,
    )
    page.errors = errors  # type: ignore[attr-defined]
    page.wait_for_function = poll_by_evaluate(page)  # type: ignore[method-assign]
    return page


def poll_by_evaluate(page):
    """wait_for_function polling with page.evaluate, from outside the page: Playwright's own polls by
    eval inside the page, which a Content-Security-Policy without 'unsafe-eval' refuses."""

    def wait_for_function(expression: str, timeout: float = scaled(30) * 1000) -> None:
        deadline = time.monotonic() + timeout / 1000
        while not page.evaluate(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true within {timeout} ms: {expression}")
            page.wait_for_timeout(20)

    return wait_for_function


WAIT_MS = int(scaled(20) * 1000)  # one step of the page, in Playwright's milliseconds


def sign_in_and_connect(page, url: str, mode: str, style: str = "hold", token: str | None = None) -> None:
    """Signs in (one click with the built-in simulator, else by pasting ``token``) and connects."""
    page.goto(url)
    if token is None:
        page.click("#dev-signin")
    else:
        page.fill("#token-input", token)
        page.click("#token-form button[type=submit]")
    page.wait_for_selector("#talk:not([hidden])")
    page.select_option("#mode", mode)
    page.select_option("#ptt-style", style)
    page.click("#connect")
    page.wait_for_function("window.talkgate.state === 'ready'", timeout=WAIT_MS)


def hold_button(page, seconds: float) -> None:
    box = page.locator("#ptt").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.wait_for_timeout(int(seconds * 1000))  # the person speaks for this long
    page.mouse.up()


def wait_for_reply(page, turns: int) -> None:
    page.wait_for_function(
        f"""window.talkgate.stats.transcripts.filter(t => t.role === 'user').length >= {turns}
            && window.talkgate.stats.transcripts.filter(t => t.role === 'agent').length >= {turns}
            && window.talkgate.player.stats.ended >= 1""",
        timeout=WAIT_MS,
    )


CYCLE = [
    {"out": "user.start_push_to_talk"},
    {"in": "user.push_to_talk_started"},
    {"out": "user.stop_push_to_talk"},
    {"in": "user.push_to_talk_stopped"},
    {"in": "user.transcription"},
    {"in": "avatar.speak_started"},
    {"in": "avatar.transcription"},
    {"in": "avatar.speak_ended"},
]


def simulator_session(page) -> tuple[str, str]:
    """The simulator's base URL and the avatar session's id, as the page got them."""
    s = page.evaluate("window.talkgate.conversation.session")
    base = s["livekitUrl"].replace("ws://", "http://").removesuffix("/_liveavatar/room")
    return base, s["avatarSessionId"]


def seen_by_simulator(page, where: tuple[str, str] | None = None) -> dict:
    base, sid = where or simulator_session(page)
    return httpx.get(f"{base}/_simulator/liveavatar/sessions/{sid}").json()


def connect_avatar(page, url: str) -> None:
    page.goto(url)
    page.click("#dev-signin")
    # Offered next to the ElevenLabs agent when LiveAvatar is configured (the simulator is).
    page.wait_for_selector('#mode option[value="avatar"]:not([hidden])', state="attached", timeout=WAIT_MS)
    page.select_option("#mode", "avatar")
    page.click("#connect")
    page.wait_for_function("window.talkgate.state === 'ready'", timeout=WAIT_MS)
