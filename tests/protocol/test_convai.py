import json

import pytest

from talkgate.errors import ProtocolError
from talkgate.protocol import convai

pytestmark = pytest.mark.unit

SERVER_EVENTS = [
    convai.ConversationInitiationMetadata("conv_1", "pcm_44100", "ulaw_8000"),
    convai.Ping(7, None),
    convai.Ping(8, 42),
    convai.AgentAudio("AAAA", 3),
    convai.UserTranscript("hello", 3),
    convai.TentativeUserTranscript("hel", 3),
    convai.AgentResponse("hi there", 4),
    convai.AgentResponseCorrection("hi there", "hi...", 4),
    convai.Interruption(5),
    convai.Interruption(5, "user"),
    convai.VadScore(0.75),
    convai.ClientToolCall("lookup", "tc_1", {"q": 1}, 6),
    convai.ServerError(1008, "invalid_message", "bad"),
]


@pytest.mark.parametrize("event", SERVER_EVENTS, ids=lambda e: type(e).__name__)
def test_server_events_round_trip(event):
    assert convai.parse_server_event(event.serialize()) == event


def test_server_frames_use_the_published_field_names():
    assert json.loads(convai.AgentAudio("QQ==", 1).serialize()) == {
        "type": "audio",
        "audio_event": {"audio_base_64": "QQ==", "event_id": 1},
    }
    assert json.loads(convai.UserTranscript("x", 2).serialize())["user_transcription_event"] == {
        "user_transcript": "x",
        "event_id": 2,
    }


def test_unknown_server_type_is_kept_not_raised():
    event = convai.parse_server_event('{"type":"agent_chat_response_part","text_response_part":{"text":"a"}}')
    assert isinstance(event, convai.UnknownServerEvent)
    assert event.type == "agent_chat_response_part"
    assert event.payload == {"text_response_part": {"text": "a"}}


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1,2]",
        '{"no_type":1}',
        '{"type":"audio"}',
        '{"type":"audio","audio_event":{"audio_base_64":5,"event_id":1}}',
        '{"type":"ping","ping_event":{"event_id":"x"}}',
        '{"type":"ping","ping_event":{"event_id":true}}',
        '{"type":"vad_score","vad_score_event":{"vad_score":"high"}}',
    ],
)
def test_malformed_known_server_frames_raise(raw):
    with pytest.raises(ProtocolError):
        convai.parse_server_event(raw)


CLIENT_EVENTS = [
    convai.UserAudioChunk("AAAA"),
    convai.Pong(9),
    convai.ConversationInitiationClientData({"agent": {"first_message": "hi"}}, {"name": "Ann"}, {}, "u1"),
    convai.ContextualUpdate("on pricing page"),
    convai.ContextualUpdate("on the cart", "page"),
    convai.Feedback("like", 3),
    convai.Feedback(None, 4),
    convai.McpToolApprovalResult("mcp_1", True),
    convai.MultimodalMessage("what is this?", ("file_1", "file_2")),
    convai.MultimodalMessage(None, ("file_1",)),
    convai.UserMessage("hello"),
    convai.UserActivity(),
    convai.ClientToolResult("tc_1", "ok", False),
    convai.UserMessageBegin(),
    convai.EndUserAudio(),
    convai.TextKeepAlive(),
]


@pytest.mark.parametrize("event", CLIENT_EVENTS, ids=lambda e: type(e).__name__)
def test_client_events_round_trip(event):
    assert convai.parse_client_event(event.serialize()) == event


def test_seed_dialect_messages_are_exactly_the_seed_bytes():
    assert json.loads(convai.UserMessageBegin().serialize()) == {"type": "user_message_begin"}
    assert json.loads(convai.EndUserAudio().serialize()) == {"type": "end_user_audio"}
    assert json.loads(convai.TextKeepAlive().serialize()) == {"text": " "}
    assert json.loads(convai.UserAudioChunk("QUJD").serialize()) == {"user_audio_chunk": "QUJD"}
    assert {"user_message_begin", "end_user_audio", "text_keepalive"} == convai.SEED_DIALECT_TYPES


def test_contextual_update_needs_text():
    with pytest.raises(ProtocolError):
        convai.parse_client_event('{"type":"contextual_update","context":"a known name"}')


def test_unknown_client_type_is_typed():
    event = convai.parse_client_event('{"type":"terminate_session"}')
    assert isinstance(event, convai.UnknownClientEvent) and event.type == "terminate_session"


def test_the_browser_clients_published_extras_are_typed_and_checked():
    """What @elevenlabs/client's sendFeedback, sendMultimodalMessage and MCP approvals put on the
    wire; the service takes them, so they must not read as unknown messages."""
    assert convai.parse_client_event('{"type":"feedback","score":"dislike","event_id":2}') == convai.Feedback(
        "dislike", 2
    )
    multimodal = '{"type":"multimodal_message","text":{"type":"user_message","text":"hi"},'
    multimodal += '"file":{"type":"file_input","file_id":"f1"}}'
    assert convai.parse_client_event(multimodal) == convai.MultimodalMessage("hi", ("f1",))
    for bad in (
        '{"type":"feedback","score":"meh","event_id":2}',
        '{"type":"feedback","score":"like"}',
        '{"type":"mcp_tool_approval_result","tool_call_id":"t","is_approved":"yes"}',
    ):
        with pytest.raises(ProtocolError):
            convai.parse_client_event(bad)


def test_the_service_answers_the_browser_clients_subprotocol():
    assert convai.chosen_subprotocol(["convai", "bearer.tok"]) == "convai"
    assert convai.chosen_subprotocol([]) is None
    assert convai.chosen_subprotocol(["chat"]) is None
    assert convai.bearer_token(["convai", "bearer.tok"]) == "tok"
    assert convai.bearer_token(["convai", "bearer."]) is None
