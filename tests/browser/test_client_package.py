"""talkgate-client (clients/js) in Chromium, as the page loads it (src/talkgate/static/js/client/):
its browser microphone (AudioWorklet, PCM16 16 kHz) and player make a relayed push-to-talk turn
with the fake microphone's speech, on talkgate's own origin and Content-Security-Policy."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.timing import TIMEOUT

pytestmark = pytest.mark.browser

START = """
async (kind) => {
  const tg = await import("/static/js/client/index.js");
  const init = { method: "POST", headers: { "Content-Type": "application/json" }, body: '{"user":"pkg"}' };
  const { token } = await (await fetch("/api/dev/token", init)).json();
  const client = await tg.connect({ url: location.origin, token });
  const context = new AudioContext({ sampleRate: 16000 });
  const workletUrl = "/static/js/client/pcm-worklet.js"; // the page's CSP refuses blob: modules
  const microphone = () =>
    kind === "webm" ? new tg.MediaRecorderSource() : new tg.BrowserMicrophone({ context, workletUrl });
  const conversation = await client.startConversation({ voice: "default", audio: microphone });
  const player = new tg.BrowserPlayer();
  player.attach(conversation);
  const pkg = { tg, token, client, conversation, player, messages: [], states: [], errors: [] };
  conversation.on("message", (m) => pkg.messages.push([m.type, m.text || ""]));
  conversation.on("state", (s) => pkg.states.push(s));
  conversation.on("error", (e) => pkg.errors.push(e.code));
  window.__pkg = pkg;
  return { id: conversation.conversationId, token };
}
"""


@pytest.mark.parametrize("kind", ["pcm", "webm"])
def test_the_package_makes_a_relayed_turn_from_the_browser_microphone(page, talkgate, kind):
    """PCM16 from the AudioWorklet, or WebM/Opus from MediaRecorder (talkgate decodes it)."""
    page.goto(talkgate.url)
    started = page.evaluate(START, kind)
    assert page.evaluate("__pkg.conversation.press()") == "talking"
    page.wait_for_timeout(2000)  # speaking into the fake microphone
    assert page.evaluate("__pkg.conversation.release()") == "idle"
    page.wait_for_function(
        "__pkg.messages.some(([t]) => t === 'agent_response') && __pkg.player.stats.chunks > 0"
        " && __pkg.player.stats.ended === __pkg.player.stats.chunks",
        timeout=TIMEOUT * 1000,
    )
    heard = page.evaluate("__pkg.messages.filter(([t]) => t === 'user_transcript').map(([, x]) => x)")
    seconds, level = map(float, re.findall(r"\[([\d.]+) s of speech at (-?\d+) dBFS\]", heard[0])[0])
    assert 1.8 <= seconds <= 3.0, heard  # the 2 s held plus the tail, nothing before the press
    assert level > -40, heard  # speech, not silence
    assert page.evaluate("__pkg.states") == ["opening", "starting", "talking", "ending", "idle"]
    assert page.evaluate("__pkg.errors") == []
    ended = page.evaluate("__pkg.conversation.end()")
    assert ended["reason"] == "client"
    headers = {"Authorization": f"Bearer {started['token']}"}
    call = httpx.get(f"{talkgate.url}/api/calls/{started['id']}", headers=headers).json()
    assert call["status"] == "ended" and call["audioBytes"] > 16000 * 2 * 1.8


CLOSE_WHILE_FRAMES_QUEUE = """
async () => {
  const tg = await import("/static/js/client/index.js");
  const context = new AudioContext({ sampleRate: 16000 });
  const levels = [];
  const workletUrl = "/static/js/client/pcm-worklet.js";
  const mic = new tg.BrowserMicrophone({ context, workletUrl, onLevel: (p) => levels.push(p) });
  await mic.open();
  mic.start(() => {});
  await new Promise((r) => setTimeout(r, 500));
  const until = performance.now() + 200;
  while (performance.now() < until); // the page is busy: the worklet's frames queue up meanwhile
  const before = levels.length;
  mic.close();
  await new Promise((r) => setTimeout(r, 300)); // what was queued is delivered now
  return { heard: Math.max(...levels.slice(0, before)), after: levels.slice(before) };
}
"""


def test_the_microphones_level_stays_at_zero_after_it_is_closed(page, talkgate):
    """Frames the worklet posted before the close, delivered after it, do not move the meter: an
    app's level meter rests at 0 once the turn is over."""
    page.goto(talkgate.url)
    got = page.evaluate(CLOSE_WHILE_FRAMES_QUEUE)
    assert got["heard"] > 0.05  # the fake microphone's speech was metered
    assert got["after"] == [0]
