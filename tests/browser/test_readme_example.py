"""The client package README's browser example, exactly as printed, as an app would run it: its page
on the app's own origin (https://app.example.com), talkgate on another (https://voice.example.com,
TLS ended in front of `talkgate serve` as a reverse proxy ends it, the app's origin in
TALKGATE_CORS_ORIGINS), the package from its npm tarball's dist/ and socket.io-client's browser build
through an import map. What the example leaves to the app (its identity provider, the button, the
meter, where lines and errors are shown) is a few lines of page.
A held button makes a push-to-talk turn with the fake microphone's speech: the transcript is shown,
the agent's voice plays to its end, and the call log has the call."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.support.browser import require
from tests.support.js_package import CLIENT, pack, readme_code, unpack
from tests.support.timing import TIMEOUT, poll_until, scaled
from tests.support.tls_front import TlsFront

from .conftest import CHROMIUM

pytestmark = pytest.mark.browser

APP = "https://app.example.com"
TALKGATE = "voice.example.com"  # as the README names it
USER = "readme"

PAGE = f"""<!doctype html>
<meta charset="utf-8">
<title>talkgate-client README example</title>
<button id="button">Hold to talk</button>
<button id="hangUp">Hang up</button>
<meter id="meter" min="0" max="1" value="0"></meter>
<ol id="lines"></ol>
<p id="errors"></p>
<script>
  // What the example leaves to the app: its identity provider (here talkgate's development sign-in)
  // and where lines and errors are shown. The button, hangUp and meter are the elements above.
  window.myAuth = {{
    async getIdToken() {{
      const headers = {{ "Content-Type": "application/json" }};
      const init = {{ method: "POST", headers, body: '{{"user":"{USER}"}}' }};
      return (await (await fetch("https://{TALKGATE}/api/dev/token", init)).json()).token;
    }},
  }};
  function show(who, text) {{
    const line = document.createElement("li");
    line.dataset.who = who;
    line.textContent = text;
    document.getElementById("lines").append(line);
  }}
  function showError(text) {{
    document.getElementById("errors").textContent += text + "\\n";
  }}
</script>
<script type="importmap">
  {{ "imports": {{
    "talkgate-client": "/talkgate-client/index.js",
    "socket.io-client": "/socket.io-client.js"
  }} }}
</script>
<script type="module" src="/example.js"></script>
"""

# Watching what the person sees and hears, without touching the example: each agent buffer played
# (and whether it played to its end: a suspended AudioContext never gets there), every level the
# meter showed, every state the button took.
WATCH = """
(() => {
  const seen = { started: 0, ended: 0, seconds: 0, levels: [], states: [] };
  const start = AudioBufferSourceNode.prototype.start;
  AudioBufferSourceNode.prototype.start = function (...args) {
    seen.started += 1;
    seen.seconds += this.buffer ? this.buffer.duration : 0;
    this.addEventListener("ended", () => (seen.ended += 1));
    return start.apply(this, args);
  };
  const value = Object.getOwnPropertyDescriptor(HTMLMeterElement.prototype, "value");
  Object.defineProperty(HTMLMeterElement.prototype, "value", {
    ...value,
    set(v) {
      seen.levels.push(v);
      value.set.call(this, v);
    },
  });
  new MutationObserver((changes) => {
    for (const c of changes) if (c.attributeName === "data-state") seen.states.push(c.target.dataset.state);
  }).observe(document, { attributes: true, subtree: true, attributeFilter: ["data-state"] });
  window.__seen = seen;
})();
"""


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package's dist/ as its npm tarball ships it."""
    out = tmp_path_factory.mktemp("package")
    return unpack(pack(out), out) / "dist"


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsFront]:
    running = TlsFront(TALKGATE, tmp_path_factory.mktemp("tls")).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def example_browser(speech_wav, front: TlsFront):
    """Chromium as the conftest's (without its autoplay switch), with the README's talkgate host name
    resolved to the TLS front..."""
    require("Debian's chromium", os.path.exists(CHROMIUM))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={speech_wav[0]}%noloop",
                f"--host-resolver-rules=MAP {TALKGATE} 127.0.0.1:{front.port}",
                # ... an address of the public internet, as a deployment's is (Chromium's local
                # network access checks would refuse a public page's requests to a loopback one).
                f"--ip-address-space-overrides=127.0.0.1:{front.port}=public",
            ],
        )
        yield launched
        launched.close()


def serve_app(route, dist: Path, example: str) -> None:
    path = route.request.url.removeprefix(APP).split("?")[0]
    if path == "/":
        route.fulfill(body=PAGE, content_type="text/html; charset=utf-8")
    elif path == "/example.js":
        route.fulfill(body=example, content_type="text/javascript")
    elif path == "/socket.io-client.js":
        bundle = CLIENT / "node_modules" / "socket.io-client" / "dist" / "socket.io.esm.min.js"
        route.fulfill(path=str(bundle), content_type="text/javascript")
    elif path.startswith("/talkgate-client/") and (dist / path.removeprefix("/talkgate-client/")).is_file():
        route.fulfill(path=str(dist / path.removeprefix("/talkgate-client/")), content_type="text/javascript")
    elif path == "/favicon.ico":
        route.fulfill(status=204)
    else:
        route.fulfill(status=404, body="not found")


def test_the_readme_browser_example_runs_unmodified(
    example_browser, front: TlsFront, serve_talkgate, dist: Path
):
    talkgate = serve_talkgate(TALKGATE_CORS_ORIGINS=APP)
    front.backend = int(talkgate.url.rsplit(":", 1)[1])
    example = readme_code("In a browser (about 20 lines)")
    assert f'url: "https://{TALKGATE}"' in example

    context = example_browser.new_context(ignore_https_errors=True)  # the front's certificate is self-signed
    context.add_init_script(WATCH)
    context.route(f"{APP}/**", lambda route: serve_app(route, dist, example))
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        page.goto(f"{APP}/")
        try:
            page.wait_for_function(
                "document.getElementById('button').onpointerdown !== null", timeout=scaled(20) * 1000
            )
        except PlaywrightTimeout:
            pytest.fail(f"the example did not start: {errors} {page.text_content('#errors')!r}")

        page.hover("#button")
        page.mouse.down()
        page.wait_for_timeout(2000)  # the person speaks into the fake microphone
        page.mouse.up()

        page.wait_for_function(
            "document.querySelector('#lines li[data-who=agent]') !== null"
            " && __seen.started > 0 && __seen.ended === __seen.started",
            timeout=TIMEOUT * 1000,
        )
        lines = page.eval_on_selector_all("#lines li", "ls => ls.map(l => [l.dataset.who, l.textContent])")
        assert [who for who, _ in lines] == ["you", "agent"], lines
        seconds, level = map(float, re.findall(r"\[([\d.]+) s of speech at (-?\d+) dBFS\]", lines[0][1])[0])
        assert 1.8 <= seconds <= 3.0, lines  # the 2 s held plus the tail, nothing before the press
        assert level > -40, lines  # speech, not silence
        seen = page.evaluate("__seen")
        # The simulator's agent says the turn back: its voice played for as long, to its end.
        assert abs(seen["seconds"] - seconds) < 0.25, (seen["seconds"], seconds)
        assert seen["states"] == ["opening", "starting", "talking", "ending", "idle"]
        levels = seen["levels"]
        assert max(levels) > 0.05 and levels[-1] == 0, levels[-8:]  # the meter moved, then closed
        assert page.text_content("#errors") == ""

        page.click("#hangUp")
        token = httpx.post(f"{talkgate.url}/api/dev/token", json={"user": USER}).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}

        def calls() -> list[dict]:
            return httpx.get(f"{talkgate.url}/api/calls", headers=auth).json()["calls"]

        poll_until(lambda: calls() and calls()[0]["status"] != "active", TIMEOUT, what="the call ending")
        (call,) = calls()
        assert (call["status"], call["endReason"]) == ("ended", "client"), call
        detail = httpx.get(f"{talkgate.url}/api/calls/{call['conversationId']}", headers=auth).json()
        assert [line["role"] for line in detail["transcript"]] == ["user", "agent"]
        assert detail["audioBytes"] > 16000 * 2 * 1.8
        assert errors == []
    finally:
        context.close()
