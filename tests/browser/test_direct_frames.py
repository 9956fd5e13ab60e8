"""The direct mode's page reads the provider's frames itself (through the client package's
DirectConversation, as the page loads it): fed the frames talkgate's own Python definitions
serialize, it shows the provider's error message (nested under ``error_event``) and, like
the push-to-talk relay, drops agent audio from before an interruption."""

from __future__ import annotations

import json

import pytest

from talkgate.protocol import convai

pytestmark = pytest.mark.browser

FEED = """async (frames) => {
  const { DirectConversation } = await import("/static/js/client/index.js");
  const { messageFor } = await import("/static/js/app.js");
  const seen = { audio: [], errors: [], messages: [], sent: [], logged: [] };
  const config = { pttTurnEnd: "signal", pttSilenceMs: 1500 };
  const conversation = new DirectConversation({}, config, {});
  conversation.info = { conversationId: "conv_frames", outputFormat: "pcm_16000" };
  conversation.on("audio", (a) => seen.audio.push([a.base64, a.eventId]));
  conversation.on("error", (e) => {
    const error = { code: e.code, message: e.message, fatal: e.fatal };
    seen.errors.push({ ...error, shown: messageFor(error) });
  });
  conversation.on("message", (m) => seen.messages.push(m));
  conversation.log = (role, text) => seen.logged.push([role, text]);
  conversation.send = (obj) => seen.sent.push(obj);
  for (const frame of frames) conversation.receive(frame);
  return seen;
}"""


def frames(*events: convai.ServerEvent) -> list[dict]:
    return [json.loads(event.serialize()) for event in events]


def test_direct_mode_drops_agent_audio_from_before_an_interruption(page, talkgate):
    page.goto(talkgate.url)
    seen = page.evaluate(
        FEED,
        frames(
            convai.AgentAudio("AAAA", 4),
            convai.AgentAudio("AAAB", 5),
            convai.Interruption(6),
            convai.AgentAudio("AAAC", 5),  # the interrupted reply, still arriving: dropped
            convai.AgentAudio("AAAD", 6),  # the next reply may share the interruption's id: played
            convai.AgentAudio("AAAE", 7),
            convai.Ping(9),
        ),
    )
    assert seen["audio"] == [["AAAA", 4], ["AAAB", 5], ["AAAD", 6], ["AAAE", 7]]
    assert seen["messages"] == [{"type": "interruption", "eventId": 6}]
    assert seen["sent"] == [{"type": "pong", "event_id": 9}]


def test_direct_mode_shows_the_provider_error_message(page, talkgate):
    page.goto(talkgate.url)
    seen = page.evaluate(
        FEED,
        frames(
            convai.UserTranscript("hello", 1),
            convai.AgentResponse("hi there", 2),
            convai.ServerError(1002, "llm_timeout", "the language model did not answer"),
        ),
    )
    assert seen["logged"] == [["user", "hello"], ["agent", "hi there"]]
    (error,) = seen["errors"]
    assert error["code"] == "provider_error" and error["fatal"] is False
    assert error["message"] == "llm_timeout: the language model did not answer"
    assert error["shown"] == (
        "The voice provider reported an error. (llm_timeout: the language model did not answer)"
    )
    assert page.errors == []
