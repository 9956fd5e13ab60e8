"""ElevenLabs' REST and webhook bodies (protocol/elevenlabs_rest.py) and the one error serializer:
each body is built and parsed by one definition, which the provider adapter and the simulator share."""

import json

import pytest

from talkgate.errors import ErrorCode, ProtocolError, TalkgateError, error_body
from talkgate.protocol import app_events
from talkgate.protocol import elevenlabs_rest as rest


def test_signed_url_request_and_reply_round_trip():
    asked = rest.SignedUrlRequest("agent_1", include_conversation_id=True)
    assert asked.query() == {"agent_id": "agent_1", "include_conversation_id": "true"}
    assert rest.SignedUrlRequest.parse(asked.query()) == asked
    assert rest.SignedUrlRequest("agent_1").query() == {"agent_id": "agent_1"}
    reply = rest.SignedUrlReply("wss://x/v1/convai/conversation?s=1", "conv_1")
    assert reply.build() == {"signed_url": "wss://x/v1/convai/conversation?s=1", "conversation_id": "conv_1"}
    assert rest.SignedUrlReply.parse(reply.build()) == reply
    assert rest.SignedUrlReply("ws://x").build() == {"signed_url": "ws://x"}
    # The service names the conversation in the URL's own query, the body holding signed_url alone.
    named = "wss://x/v1/convai/conversation?agent_id=a&conversation_id=conv_9&conversation_signature=s"
    assert rest.SignedUrlReply.parse({"signed_url": named}).conversation_id == "conv_9"
    both = {"signed_url": named, "conversation_id": "conv_8"}
    assert rest.SignedUrlReply.parse(both).conversation_id == "conv_8"


@pytest.mark.parametrize("body", [None, [], {}, {"signed_url": 1}, {"signed_url": "https://not-a-socket"}])
def test_a_signed_url_reply_without_a_socket_url_is_refused(body):
    with pytest.raises(rest.FieldError):
        rest.SignedUrlReply.parse(body)


def test_a_signed_url_reply_keeps_only_a_plausible_conversation_id():
    assert (
        rest.SignedUrlReply.parse({"signed_url": "ws://x", "conversation_id": "c" * 129}).conversation_id
        is None
    )
    assert rest.SignedUrlReply.parse({"signed_url": "ws://x", "conversation_id": 7}).conversation_id is None


def test_a_signed_url_request_needs_an_agent():
    with pytest.raises(rest.FieldError) as raised:
        rest.SignedUrlRequest.parse({})
    assert raised.value.loc == ("agent_id",) and raised.value.reason == "field required"


def test_conversation_start_request_as_talkgate_sends_it():
    asked = rest.ConversationStartRequest("agent_1", "wss://gate/media?sig=1")
    assert asked.build() == {
        "agent_id": "agent_1",
        "media": {"stream": True, "websocket_url": "wss://gate/media?sig=1"},
    }
    assert rest.ConversationStartRequest.parse(asked.build()) == asked
    assert rest.ConversationStartRequest("agent_1").build() == {"agent_id": "agent_1"}
    named = rest.ConversationStartRequest("a", None, "conv_x")
    assert rest.ConversationStartRequest.parse(named.build()) == named


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ("agent_id",)),
        ({"agent_id": ""}, ("agent_id",)),
        ({"agent_id": "a", "conversation_id": "c" * 129}, ("conversation_id",)),
        (
            {"agent_id": "a", "media": {"stream": True, "websocket_url": "http://x"}},
            ("media", "websocket_url"),
        ),
        ("text", ()),
    ],
)
def test_conversation_start_request_names_the_bad_field(body, loc):
    with pytest.raises(rest.FieldError) as raised:
        rest.ConversationStartRequest.parse(body)
    assert raised.value.loc == loc


def test_conversation_start_reply_round_trip_and_defaults():
    reply = rest.ConversationStartReply("wss://x", "conv_1", media_streaming=False)
    assert reply.build() == {"conversation_id": "conv_1", "signed_url": "wss://x", "media_streaming": False}
    assert rest.ConversationStartReply.parse(reply.build()) == reply
    # A provider that does not say whether it streams streams as asked.
    assert rest.ConversationStartReply.parse({"signed_url": "wss://x"}) == rest.ConversationStartReply(
        "wss://x", None, True
    )
    with pytest.raises(rest.FieldError):
        rest.ConversationStartReply.parse({"conversation_id": "c"})


def test_recording_path():
    assert rest.recording_path("conv_1") == "/v1/convai/conversations/conv_1/audio"


def test_post_call_audio_webhook_round_trip():
    event = rest.PostCallAudio("agent_1", "conv_1", "SUQz", 1_700_000_000)
    body = rest.build_webhook(event)
    assert json.loads(body) == {
        "type": "post_call_audio",
        "event_timestamp": 1_700_000_000,
        "data": {"agent_id": "agent_1", "conversation_id": "conv_1", "full_audio": "SUQz"},
    }
    assert rest.parse_webhook(body) == event


def test_post_call_transcription_webhook_round_trip():
    turns = (rest.TranscriptTurn("user", "hello"), rest.TranscriptTurn("agent", "hi"))
    event = rest.PostCallTranscription("agent_1", "conv_1", turns, 1_700_000_000)
    body = rest.build_webhook(event)
    assert json.loads(body)["data"]["transcript"] == [
        {"role": "user", "message": "hello"},
        {"role": "agent", "message": "hi"},
    ]
    assert rest.parse_webhook(body) == event


def test_other_webhooks_and_audio_without_audio_are_not_applied():
    other = rest.parse_webhook(b'{"type":"call_initiation_failure","data":{"conversation_id":"c","x":1}}')
    assert isinstance(other, rest.OtherWebhook)
    assert (other.type, other.conversation_id, other.payload) == ("call_initiation_failure", "c", {"x": 1})
    hollow = rest.parse_webhook(b'{"type":"post_call_audio","data":{"conversation_id":"c"}}')
    assert isinstance(hollow, rest.OtherWebhook) and hollow.type == "post_call_audio"


@pytest.mark.parametrize(
    "body", [b"{", b"[]", b'{"type":"x"}', b'{"type":"x","data":{}}', b'{"data":{"conversation_id":"c"}}']
)
def test_a_body_that_is_not_a_provider_event_is_refused(body):
    with pytest.raises(ProtocolError, match="webhook body is not a provider event"):
        rest.parse_webhook(body)


def test_one_error_serializer_for_bodies_acks_and_events():
    assert error_body(ErrorCode.FORBIDDEN, "no") == {"error": {"code": "forbidden", "message": "no"}}
    error = TalkgateError("gone", code=ErrorCode.CALL_ENDED)
    assert error.body() == {"error": {"code": "call_ended", "message": "gone"}}
    assert app_events.failed(error) == {"ok": False, **error.body()}
    assert app_events.error_payload(error, fatal=True) == {
        "code": "call_ended",
        "message": "gone",
        "fatal": True,
    }


def test_liveavatar_session_bodies_round_trip():
    from talkgate.protocol import liveavatar

    token = liveavatar.AvatarToken("s1", "tok")
    assert liveavatar.AvatarToken.parse(token.build()) == token
    room = liveavatar.AvatarRoom("s1", "wss://room", "client", 1200)
    assert liveavatar.AvatarRoom.parse(room.build(), "other") == room
    # A start reply that does not repeat the session id keeps the token's; a non-integer duration is none.
    sparse = {"livekit_url": "wss://room", "livekit_client_token": "client", "max_session_duration": True}
    assert liveavatar.AvatarRoom.parse(sparse, "s1") == liveavatar.AvatarRoom(
        "s1", "wss://room", "client", None
    )
    # A talkgate simulator marks its stand-in room (not in the published API); LiveAvatar's reply has no mark.
    stand_in = liveavatar.AvatarRoom("s1", "ws://sim/_liveavatar/room", "client", 1200, stand_in=True)
    assert stand_in.build()["talkgate_stand_in"] is True
    assert liveavatar.AvatarRoom.parse(stand_in.build(), "s1") == stand_in
    assert liveavatar.AvatarRoom.parse(sparse, "s1").stand_in is False
    assert "talkgate_stand_in" not in room.build()
    assert liveavatar.AvatarRoom.parse({**sparse, "talkgate_stand_in": "yes"}, "s1").stand_in is False
    assert liveavatar.SessionRequest("s1").build() == {"session_id": "s1"}
    stop = liveavatar.SessionRequest("s1", "USER_CLOSED")
    assert liveavatar.SessionRequest.parse(stop.build()) == stop
    envelope = liveavatar.Envelope(liveavatar.SUCCESS, token.build(), "success")
    assert liveavatar.Envelope.parse(envelope.serialize()) == envelope


@pytest.mark.parametrize(
    "data",
    [
        None,
        {},
        {"session_id": "s"},
        {"session_id": "", "session_token": "t"},
        {"session_id": 1, "session_token": "t"},
    ],
)
def test_a_liveavatar_token_reply_without_both_fields_is_refused(data):
    from talkgate.protocol import liveavatar

    with pytest.raises(ProtocolError):
        liveavatar.AvatarToken.parse(data)


def test_a_liveavatar_stop_with_an_unknown_reason_is_refused():
    from talkgate.protocol import liveavatar

    with pytest.raises(ProtocolError, match="unknown reason"):
        liveavatar.SessionRequest.parse({"session_id": "s", "reason": "BORED"})
    with pytest.raises(ProtocolError, match="session_id"):
        liveavatar.SessionRequest.parse({})


def test_media_grant_query_round_trip_and_refusals():
    from urllib.parse import parse_qsl

    from talkgate.errors import AuthError
    from talkgate.protocol.media import MediaGrant

    grant = MediaGrant("conv_1", 1_700_000_000, "abc")
    assert MediaGrant.parse(dict(parse_qsl(grant.query()))) == grant
    with pytest.raises(AuthError, match="valid conversation_id"):
        MediaGrant.parse({"conversation_id": "../x", "expires": "1"})
    with pytest.raises(AuthError, match="expiry"):
        MediaGrant.parse({"conversation_id": "c", "expires": "soon"})


def test_chunk_upload_json_round_trip_and_conversion():
    from talkgate.errors import AudioError
    from talkgate.protocol.audio import PCM_16000, AudioFormat

    pcm = b"\x01\x00\x02\x00"
    chunk = app_events.ChunkUpload(PCM_16000, pcm)
    assert app_events.ChunkUpload.parse(json.dumps(chunk.build()), 1024) == chunk
    assert app_events.ChunkUpload.parse(json.dumps({"audio": "AQACAA=="}), 1024).pcm_16000() == pcm
    ulaw = app_events.ChunkUpload.parse(json.dumps({"audio": "/w==", "format": "ulaw_8000"}), 1024)
    assert ulaw.format == AudioFormat.parse("ulaw_8000") and len(ulaw.pcm_16000()) == 4
    with pytest.raises(ProtocolError, match="not JSON"):
        app_events.ChunkUpload.parse(b"{", 1024)
    with pytest.raises(ProtocolError, match="expected"):
        app_events.ChunkUpload.parse(b'{"audio": 1}', 1024)
    with pytest.raises(AudioError):
        app_events.ChunkUpload.parse(json.dumps({"audio": "AQAC"}), 1024)  # 3 bytes: not whole samples


def test_provider_error_bodies_are_read_back_in_the_providers_words():
    from talkgate.protocol import rest_errors

    body = rest_errors.validation_error(("body", "avatar_id"), "field required")
    assert body == {"detail": [{"loc": ["body", "avatar_id"], "msg": "field required"}]}
    assert rest_errors.error_text(json.dumps(body)) == "avatar_id: field required"
    assert rest_errors.error_text(json.dumps(rest_errors.key_refusal())) == "Invalid API key"
    assert rest_errors.error_text(b'{"code":4010,"data":null,"message":"Invalid session token"}') == (
        "Invalid session token"
    )
    assert rest_errors.error_text(json.dumps(rest_errors.detail("conversation not found"))) == (
        '{"detail": "conversation not found"}'
    )
    assert rest_errors.error_text(b"<html>" + b"x" * 500) == "<html>" + "x" * 194


def test_the_simulators_token_and_conversation_replies_round_trip():
    assert rest.ConversationTokenReply.parse(
        rest.ConversationTokenReply("t").build()
    ) == rest.ConversationTokenReply("t")
    details = rest.ConversationDetails(
        "c", "a", True, (rest.TranscriptTurn("user", "hi"),), 1_700_000_000, 12
    )
    body = details.build()
    assert body["status"] == "done" and body["metadata"] == {
        "start_time_unix_secs": 1_700_000_000,
        "call_duration_secs": 12,
    }
    assert rest.ConversationDetails.parse(body) == details


def test_post_call_transcription_as_elevenlabs_posts_it_is_parsed_and_bounded():
    # The published body's shape (the GET conversation fields), with what talkgate ignores.
    body = {
        "type": "post_call_transcription",
        "event_timestamp": 1_739_537_297,
        "data": {
            "agent_id": "agent_1",
            "conversation_id": "conv_1",
            "status": "done",
            "transcript": [
                {"role": "agent", "message": "Hey there", "tool_calls": None, "time_in_call_secs": 0},
                {"role": "user", "message": None, "tool_calls": [{"tool_name": "lookup"}]},
                {"role": "user", "message": "x" * 5000, "conversation_turn_metrics": {"a": 1}},
            ],
            "metadata": {
                "start_time_unix_secs": 1_739_537_297,
                "call_duration_secs": 22,
                "cost": 296,
                "deletion_settings": {"delete_audio": False},
                "termination_reason": "",
            },
            "analysis": {
                "evaluation_criteria_results": {
                    "polite": {"criteria_id": "polite", "result": "success", "rationale": "it was"},
                    "odd": {"criteria_id": "odd", "result": "maybe", "rationale": 5},
                },
                "data_collection_results": {
                    "city": {"data_collection_id": "city", "value": "Paris", "rationale": "said so"},
                    "items": {"data_collection_id": "items", "value": [1, 2], "rationale": ""},
                },
                "call_successful": "success",
                "transcript_summary": "The user asked about Paris.",
            },
            "conversation_initiation_client_data": {"dynamic_variables": {}},
        },
    }
    event = rest.parse_webhook(json.dumps(body).encode())
    assert isinstance(event, rest.PostCallTranscription)
    assert [t.role for t in event.transcript] == ["agent", "user", "user"]
    assert event.transcript[1].message == "" and len(event.transcript[2].message) == rest.MAX_TURN_CHARS
    assert (event.metadata.call_duration_secs, event.metadata.cost) == (22.0, 296.0)
    assert event.analysis == rest.CallAnalysis(
        "The user asked about Paris.",
        "success",
        (rest.EvaluationResult("polite", "success", "it was"), rest.EvaluationResult("odd", "unknown", "")),
        (rest.CollectedData("city", "Paris", "said so"), rest.CollectedData("items", "[1,2]", "")),
    )


@pytest.mark.parametrize("cost", [True, -1, "12", float("inf"), None])
def test_a_cost_that_is_not_a_plain_amount_is_left_out(cost):
    meta = rest.CallMetadata.parse({"cost": cost, "call_duration_secs": 3})
    assert (meta.cost, meta.call_duration_secs) == (None, 3.0)


def test_a_transcription_over_its_cap_is_refused():
    turns = (rest.TranscriptTurn("user", "w" * 4000),) * (rest.MAX_TRANSCRIPTION_BYTES // 4000 + 1)
    body = rest.build_webhook(rest.PostCallTranscription("a", "c", turns, 1))
    with pytest.raises(ProtocolError, match="post_call_transcription body") as caught:
        rest.parse_webhook(body)
    assert caught.value.code is ErrorCode.REQUEST_TOO_LARGE


def test_agent_details_round_trip_and_the_documented_defaults():
    agent = rest.AgentDetails("agent_1", "Support", "ulaw_8000", "pcm_44100", enable_auth=True)
    body = agent.build()
    assert body["conversation_config"]["asr"] == {"user_input_audio_format": "ulaw_8000"}
    assert body["platform_settings"]["auth"]["enable_auth"] is True
    assert rest.AgentDetails.parse(body) == agent
    # An agent whose configuration leaves the formats and auth out: pcm_16000 both ways, no auth.
    assert rest.AgentDetails.parse({"agent_id": "agent_2", "conversation_config": []}) == rest.AgentDetails(
        "agent_2", ""
    )
    assert rest.agent_path("agent/../x") == "/v1/convai/agents/agent%2F..%2Fx"


@pytest.mark.parametrize("body", [None, [], {}, {"agent_id": 3}, {"agent_id": ""}])
def test_an_agent_body_without_an_id_is_refused(body):
    with pytest.raises(rest.FieldError):
        rest.AgentDetails.parse(body)
