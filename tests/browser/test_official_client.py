"""ElevenLabs' official browser client, ``@elevenlabs/client``, unmodified in Chromium with the fake
microphone (espeak-ng speech), holds a voice conversation with the simulator over a signed URL, in
each of the simulator's behaviours: as an app using the client would against the real service."""

from __future__ import annotations

import base64
import re

import httpx
import pytest

from talkgate.protocol.audio import PCM_16000, ULAW_8000, AudioFormat
from talkgate.protocol.elevenlabs_rest import SIGNED_URL_PATH
from tests.support.audio import best_correlation
from tests.support.browser import WAIT_MS, new_page, require
from tests.support.gate import start_gate
from tests.support.official_client import CLIENT_BUNDLE, client_page_server
from tests.support.recordings import wav_pcm
from tests.support.servers import AGENT_ID, SIM_KEY, start_simulator
from tests.support.timing import TIMEOUT

# The simulator's behaviours: the push-to-talk signal dialect (its default), the published
# protocol only, and a provider that ignores what it does not know; then an agent whose audio
# formats are not the defaults (the client captures and plays whatever the metadata names).
CASES: dict[str, dict[str, object]] = {
    "signal": {},
    "strict": {"strict": True},
    "ignore_unknown": {"ignore_unknown": True},
    "ulaw_in_pcm44k_out": {"input_format": ULAW_8000, "output_format": AudioFormat.parse("pcm_44100")},
}
HEARD = re.compile(r"I heard (\d+\.\d\d) seconds of audio")


def replies_played(output: AudioFormat) -> str:
    """Every agent reply's audio has arrived: each reply says how long it is (to 10 ms), and the
    client's onAudio callbacks add up to that, in the agent's output format."""
    per_s = output.bytes_for_ms(1000)
    return f"""(() => {{
  const o = window.official;
  const users = o.messages.filter(m => m.role === "user").length;
  const seconds = o.messages.filter(m => m.role === "agent")
    .map(m => Number((m.message.match(/{HEARD.pattern}/) || [0, NaN])[1]));
  const expected = seconds.reduce((a, b) => a + b, 0) * {per_s};
  return users >= 1 && seconds.length === users && Math.abs(o.audio - expected) <= {per_s // 100} * users;
}})()"""


# The client's other published messages, as an app sends them mid-conversation.
USE_THE_REST = """(() => {
  const c = window.official.conversation;
  c.sendFeedback(true);
  c.sendContextualUpdate("the user is on the test page", { contextId: "page" });
  c.sendUserActivity();
  c.sendUserMessage("typed hello");
})()"""


@pytest.fixture(scope="module")
def client_page():
    require("@elevenlabs/client (npm ci)", CLIENT_BUNDLE.is_file())
    server = client_page_server()
    yield server
    server.stop()


def signed_url(sim) -> str:
    reply = httpx.get(
        f"{sim.http_url}{SIGNED_URL_PATH}",
        params={"agent_id": AGENT_ID},
        headers={"xi-api-key": SIM_KEY},
        timeout=TIMEOUT,
    )
    assert reply.status_code == 200, reply.text
    url: str = reply.json()["signed_url"]
    return url


def converse(chromium, client_page, url: str, output: AudioFormat, speech_s: float) -> dict:
    """An app's whole session with the client: start it on ``url``, let the microphone say its
    sentence (``speech_s`` long; the simulator's VAD may make one turn of it or several) until
    every reply has played, use the client's other messages, end it. Returns what the client saw."""
    page = new_page(chromium, {"width": 800, "height": 600})
    try:
        page.goto(client_page.http_url)
        page.evaluate("url => window.startOfficial(url)", url)
        started = page.evaluate("window.official")
        assert started["failed"] is None, started
        assert started["connected"]["conversationId"].startswith("conv_")
        # The microphone's file is played out (it starts when the client opens the microphone,
        # before onConnect) and, 0.5 s of silence later, the last turn ended; then every reply
        # has come.
        said_it_all = f"performance.now() - window.official.connectedAt > {int(speech_s * 1000) + 1000}"
        page.wait_for_function(f"{said_it_all} && {replies_played(output)}", timeout=WAIT_MS)
        page.evaluate(USE_THE_REST)
        page.wait_for_function(
            "window.official.messages.some(m => m.message === 'You wrote: typed hello')", timeout=WAIT_MS
        )
        page.evaluate("window.official.conversation.endSession()")
        page.wait_for_function("window.official.disconnect !== null", timeout=WAIT_MS)
        seen: dict = page.evaluate("window.official")
        assert page.errors == []  # no uncaught exception, nothing logged as an error
        return seen
    finally:
        page.context.close()


@pytest.mark.parametrize("case", list(CASES))
def test_official_client_holds_a_voice_conversation(chromium, client_page, speech_wav, case):
    fields = CASES[case]
    output = fields.get("output_format", PCM_16000)
    assert isinstance(output, AudioFormat)
    sim = start_simulator(**fields)
    try:
        seen = converse(chromium, client_page, signed_url(sim), output, len(speech_wav[1]) / 32000)
        conversation_id = seen["connected"]["conversationId"]
        frames = httpx.get(f"{sim.http_url}/_simulator/conversations/{conversation_id}/frames").json()
        details = httpx.get(
            f"{sim.http_url}/v1/convai/conversations/{conversation_id}", headers={"xi-api-key": SIM_KEY}
        ).json()
    finally:
        sim.stop()

    # The user's speech was heard and answered, in order, as the simulator recorded it.
    said = [(m["role"], m["message"]) for m in seen["messages"]]
    assert said == [(t["role"], t["message"]) for t in details["transcript"]]
    assert said[0][0] == "user" and re.fullmatch(r"\[\d+\.\d\d s of speech at -?\d+ dBFS\]", said[0][1])
    assert said[1][0] == "agent" and HEARD.match(said[1][1])
    assert said[-1] == ("agent", "You wrote: typed hello")
    assert seen["audioChunks"] > 0
    # No error callback, and the session ended as the user asked.
    assert seen["errors"] == []
    assert seen["disconnect"] == {"reason": "user"}
    assert seen["statuses"] == ["connecting", "connected", "disconnecting", "disconnected"]
    assert (frames["close_code"], frames["close_reason"]) == (1000, "User ended conversation")
    # The client's opening message, then its microphone as user_audio_chunk frames.
    first = frames["frames"][0]
    assert first["type"] == "conversation_initiation_client_data"
    assert first["source_info"] == {"source": "js_sdk", "version": "1.25.0"}
    assert any("user_audio_chunk" in f for f in frames["frames"])
    typed = [f for f in frames["frames"] if f.get("type") not in (None, "pong")][1:]
    assert [f["type"] for f in typed] == ["feedback", "contextual_update", "user_activity", "user_message"]
    assert typed[0]["score"] == "like" and typed[1]["context_id"] == "page"


def test_direct_mode_app_runs_the_official_client_on_talkgates_signed_url(
    chromium, client_page, speech_wav, tmp_path
):
    """Direct mode as an app would use it: its backend asks talkgate for a signed URL for a call,
    the browser runs the official client on it, and talkgate records the call (the provider's
    media stream) with the agent's answer in it."""
    sim = start_simulator()
    gate = start_gate(tmp_path, sim)
    try:
        reply = httpx.post(
            f"{gate.url}/api/elevenlabs-signed-url",
            headers=gate.headers(),
            json={"conversationId": "conv_official"},
            timeout=TIMEOUT,
        )
        assert reply.status_code == 200 and reply.json()["mediaStreamingEnabled"] is True, reply.text
        speech_s = len(speech_wav[1]) / 32000
        seen = converse(chromium, client_page, reply.json()["signedUrl"], PCM_16000, speech_s)
        ended = httpx.post(f"{gate.url}/api/calls/conv_official/end", headers=gate.headers(), timeout=TIMEOUT)
        call = ended.json()
        audio = httpx.get(call["audioUrl"], headers=gate.headers(), timeout=TIMEOUT)
    finally:
        gate.server.stop()
        sim.stop()
    assert seen["errors"] == [] and seen["disconnect"] == {"reason": "user"}
    assert call["audioSource"] == "media_stream" and call["status"] == "ended"
    agent = b"".join(base64.b64decode(chunk) for chunk in seen["firstReply"])
    r, _ = best_correlation(agent, wav_pcm(audio.content), max_lag=len(audio.content) // 2)
    assert r >= 0.9, f"the recording lacks the agent's answer the client played: r={r:.3f}"


def test_a_forged_signed_url_fails_the_clients_start_with_the_reason(chromium, client_page):
    sim = start_simulator()
    page = new_page(chromium, {"width": 800, "height": 600})
    try:
        page.goto(client_page.http_url)
        forged = signed_url(sim).replace("conversation_signature=", "conversation_signature=x")
        page.evaluate("url => window.startOfficial(url)", forged)
        seen = page.evaluate("window.official")
    finally:
        page.context.close()
        sim.stop()
    # startSession rejects with the service's close reason; the session never connected.
    assert seen["failed"] == "authorization_error"
    assert seen["connected"] is None and seen["statuses"][-1] == "disconnected"
