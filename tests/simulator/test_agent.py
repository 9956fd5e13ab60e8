"""The echo agent's rules, tested without sockets or an event loop (explicit clock)."""

import base64

import numpy as np
import pytest

from talkgate.protocol import convai
from talkgate.protocol.audio import PCM_16000, ULAW_8000, AudioFormat, Encoding, convert
from talkgate.simulator.agent import AgentConfig, EchoAgent, Reaction

pytestmark = pytest.mark.unit


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def voiced(ms: int, amp: float = 0.3) -> bytes:
    n = 16 * ms
    return (np.sin(np.arange(n) / 3) * amp * 32767).astype("<i2").tobytes()


def quiet(ms: int) -> bytes:
    return bytes(32 * ms)


def chunk(data: bytes) -> str:
    return convai.UserAudioChunk(b64(data)).serialize()


def types(reaction):
    return [e.type for e in reaction.events]


def agent(**kw) -> EchoAgent:
    return EchoAgent("conv_t", AgentConfig(**kw), now=0.0)


def test_first_frame_is_metadata_with_the_configured_formats():
    a = EchoAgent("conv_t", AgentConfig(output_format=AudioFormat(Encoding.PCM, 44100)), now=0.0)
    (meta,) = a.start().events
    assert meta == convai.ConversationInitiationMetadata("conv_t", "pcm_44100", "pcm_16000")


def test_ptt_turn_echoes_exactly_what_was_heard():
    a = agent()
    a.receive(convai.UserMessageBegin().serialize(), 1.0)
    parts = [voiced(100), quiet(300), voiced(50)]  # a pause inside a PTT window does not end it
    for p in parts:
        assert a.receive(chunk(p), 1.1).events == []
    r = a.receive(convai.EndUserAudio().serialize(), 1.5)
    assert types(r)[:2] == ["user_transcript", "agent_response"]
    audio = [e for e in r.events if isinstance(e, convai.AgentAudio)]
    assert b"".join(base64.b64decode(e.audio_base_64) for e in audio) == b"".join(parts)
    assert {e.event_id for e in r.events} == {1}
    assert r.events[0].text.startswith("[0.45 s of speech")


def test_vad_turn_ends_after_half_a_second_of_silence_and_trims_the_tail():
    a = agent()
    speech = voiced(200)
    assert a.receive(chunk(quiet(200)), 0.1).events == []  # silence alone is no turn
    a.receive(chunk(speech), 0.2)
    a.receive(chunk(quiet(100)), 0.3)
    a.receive(chunk(speech), 0.4)  # speech resumes: the short pause is kept
    assert a.receive(chunk(quiet(400)), 0.5).events == []
    r = a.receive(chunk(quiet(100)), 0.6)
    heard = b"".join(base64.b64decode(e.audio_base_64) for e in r.events if isinstance(e, convai.AgentAudio))
    assert heard == speech + quiet(100) + speech
    assert r.caller_audio == [quiet(100)] and len(r.agent_audio) == 5


def test_agent_audio_is_converted_to_the_output_format():
    a = agent(output_format=ULAW_8000)
    a.receive(convai.UserMessageBegin().serialize(), 0)
    a.receive(chunk(voiced(100)), 0)
    r = a.receive(convai.EndUserAudio().serialize(), 0)
    (audio,) = [e for e in r.events if isinstance(e, convai.AgentAudio)]
    assert base64.b64decode(audio.audio_base_64) == convert(voiced(100), PCM_16000, ULAW_8000)


def test_talking_over_the_agent_interrupts_and_the_reply_shares_the_interruption_id():
    a = agent()
    a.receive(convai.UserMessageBegin().serialize(), 0)
    a.receive(chunk(voiced(1000)), 0)
    a.receive(convai.EndUserAudio().serialize(), 1.0)  # agent "plays" 1 s of audio until t=2.0
    r = a.receive(convai.UserMessageBegin().serialize(), 1.5)
    assert types(r) == ["interruption", "agent_response_correction"]
    assert r.events[0].event_id == 2 and r.events[1].event_id == 1
    assert r.events[1].corrected.endswith("...")
    a.receive(chunk(voiced(100)), 1.6)
    reply = a.receive(convai.EndUserAudio().serialize(), 1.7)
    assert {e.event_id for e in reply.events} == {2}
    # after the agent finished playing, a new turn interrupts nothing
    a.receive(convai.UserMessageBegin().serialize(), 5.0)
    assert types(a.receive(convai.EndUserAudio().serialize(), 5.1)) == []


def test_user_message_gets_a_spoken_reply():
    r = agent().receive(convai.UserMessage("hi").serialize(), 0)
    assert types(r)[0] == "agent_response" and r.events[0].text == "You wrote: hi"
    assert "audio" in types(r)


def test_first_message_override_is_spoken():
    init = convai.ConversationInitiationClientData({"agent": {"first_message": "Welcome!"}})
    r = agent().receive(init.serialize(), 0)
    assert r.events[0] == convai.AgentResponse("Welcome!", 1)


def test_timers_ping_then_no_input_timeout_then_close_1002():
    a = agent(ping_interval_s=1.0, input_timeout_s=3.0)
    assert a.next_deadline() == 1.0
    (ping,) = a.tick(1.0).events
    assert ping == convai.Ping(1, None)
    a.receive(convai.Pong(1).serialize(), 1.05)
    assert a.tick(2.0).events == [convai.Ping(2, 50)]
    r = a.tick(3.0)
    assert r.close and r.close.code == 1002
    assert r.events[0].error_type == "transport_receive_timeout"


def test_keepalives_reset_the_input_timer_and_max_duration_closes_1000():
    a = agent(ping_interval_s=100, input_timeout_s=3.0, max_duration_s=10.0)
    for t in (2.0, 4.0, 6.0, 8.0):
        a.receive(convai.TextKeepAlive().serialize() if t < 5 else convai.UserActivity().serialize(), t)
        assert a.tick(t + 0.5).close is None
    r = a.tick(10.0)
    assert r.close.code == 1000 and r.events[0].error_type == "max_duration_exceeded"


def test_strict_mode_refuses_the_seed_dialect_with_1008():
    for message in (convai.UserMessageBegin(), convai.EndUserAudio(), convai.TextKeepAlive()):
        r = agent(strict=True).receive(message.serialize(), 0)
        assert r.close.code == 1008 and r.events[0].error_type == "invalid_message"
    assert agent(strict=True).receive(convai.UserActivity().serialize(), 0).close is None


def test_ignore_unknown_mode_drops_what_it_does_not_know_and_ends_turns_by_vad_alone():
    a = agent(ignore_unknown=True, input_timeout_s=5.0)
    for message in (convai.UserMessageBegin(), convai.TextKeepAlive()):
        assert a.receive(message.serialize(), 1.0) == Reaction()
    assert a.receive('{"type":"terminate_session"}', 1.0) == Reaction()
    # user_message_begin was dropped: the turn's audio goes to the VAD, and end_user_audio ends nothing.
    assert a.receive(chunk(voiced(300)), 1.0).events == []
    assert a.receive(convai.EndUserAudio().serialize(), 1.1) == Reaction()
    ended = a.receive(chunk(quiet(500)), 1.2)
    assert isinstance(ended.events[0], convai.UserTranscript) and ended.events[0].text.startswith("[0.30 s")
    # Dropped messages are not input: the no-input timer runs from the last audio.
    a.receive(convai.TextKeepAlive().serialize(), 5.0)
    assert a.tick(6.2).close.code == 1002
    assert agent(ignore_unknown=True).receive(convai.UserActivity().serialize(), 0).close is None


def test_a_simulator_is_strict_or_ignores_unknown_messages_not_both():
    assert AgentConfig().behaviour == "signal"
    assert AgentConfig(strict=True).behaviour == "strict"
    assert AgentConfig(ignore_unknown=True).behaviour == "ignore_unknown"
    with pytest.raises(ValueError, match="not both"):
        AgentConfig(strict=True, ignore_unknown=True)


def test_bad_frames_close_1008_and_the_agent_stays_closed():
    for raw in (
        "{nope",
        chunk(b"\x01"),
        '{"user_audio_chunk":"@@@"}',
        '{"type":"contextual_update"}',
        '{"type":"terminate_session"}',
    ):
        a = agent()
        r = a.receive(raw, 0)
        assert r.close.code == 1008, raw
        assert a.receive(convai.UserActivity().serialize(), 0).events == []


def test_published_extras_are_taken_and_a_multimodal_text_is_answered():
    a = agent(strict=True)
    assert a.receive(convai.Feedback("like", 1).serialize(), 1.0) == Reaction()
    assert a.receive(convai.McpToolApprovalResult("mcp_1", False).serialize(), 1.0) == Reaction()
    assert a.receive(convai.MultimodalMessage(None, ("f1",)).serialize(), 1.0) == Reaction()
    r = a.receive(convai.MultimodalMessage("hello", ("f1",)).serialize(), 1.0)
    assert types(r)[0] == "agent_response" and r.events[0].text == "You wrote: hello"
    assert a.closed is None


def test_a_text_only_conversation_is_answered_without_audio():
    a = agent()
    override = {"conversation": {"text_only": True}, "agent": {"first_message": "Hi there"}}
    first = a.receive(convai.ConversationInitiationClientData(override).serialize(), 0.5)
    assert types(first) == ["agent_response"]
    r = a.receive(convai.UserMessage("hello").serialize(), 1.0)
    assert types(r) == ["agent_response"] and r.agent_audio == []
