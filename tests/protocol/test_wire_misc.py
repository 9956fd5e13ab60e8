import json

import pytest

from talkgate.errors import AuthError, ProtocolError
from talkgate.protocol import liveavatar, media, signing

pytestmark = pytest.mark.unit


def test_media_frames_parse_and_serialize():
    frame = media.MediaAudio(media.Track.CALLER, "conv_1", "AAAA")
    assert media.parse_media_event(frame.serialize()) == frame
    assert media.parse_media_event('{"type":"call_end","conversation_id":"c"}') == media.CallEnd("c")
    unknown = media.parse_media_event('{"type":"mark","name":"x"}')
    assert isinstance(unknown, media.UnknownMediaEvent) and unknown.payload == {"name": "x"}


@pytest.mark.parametrize(
    "raw",
    [
        "{",
        "[]",
        '{"type":"audio_input","audio":"AA=="}',
        '{"type":"audio_output","conversation_id":"c"}',
        '{"type":"call_end"}',
    ],
)
def test_bad_media_frames_raise(raw):
    with pytest.raises(ProtocolError):
        media.parse_media_event(raw)


def test_media_signature_checks_id_and_expiry():
    sig = signing.media_signature(b"k", "conv_1", 1000)
    signing.verify_media_signature(b"k", "conv_1", 1000, sig, now=999)
    with pytest.raises(AuthError, match="does not match"):
        signing.verify_media_signature(b"k", "conv_2", 1000, sig, now=999)
    with pytest.raises(AuthError, match="expired"):
        signing.verify_media_signature(b"k", "conv_1", 1000, sig, now=1001)


def test_webhook_signature_is_elevenlabs_format_with_30_minute_tolerance():
    body = b'{"type":"post_call_audio"}'
    header = signing.webhook_signature_header(b"whsec", body, 1_700_000_000)
    assert header.startswith("t=1700000000,v0=") and len(header.split("v0=")[1]) == 64
    signing.verify_webhook_signature(b"whsec", body, header, now=1_700_000_000 + 1799)
    with pytest.raises(AuthError, match="tolerance"):
        signing.verify_webhook_signature(b"whsec", body, header, now=1_700_000_000 + 1801)
    with pytest.raises(AuthError, match="does not match"):
        signing.verify_webhook_signature(b"whsec", body + b" ", header, now=1_700_000_000)
    with pytest.raises(AuthError):
        signing.verify_webhook_signature(b"whsec", body, "garbage", now=1_700_000_000)
    with pytest.raises(AuthError):
        signing.verify_webhook_signature(b"whsec", body, None, now=1_700_000_000)


def test_liveavatar_token_body_is_full_mode_push_to_talk():
    body = liveavatar.token_request("av1", voice_id="v1", context_id="c1", language="de")
    assert body == {
        "mode": "FULL",
        "avatar_id": "av1",
        "avatar_persona": {"language": "de", "voice_id": "v1", "context_id": "c1"},
        "interactivity_type": "PUSH_TO_TALK",
        "is_sandbox": False,
    }


def test_liveavatar_envelope_and_packets():
    env = liveavatar.Envelope.parse('{"code":1000,"data":{"session_id":"s"},"message":"ok"}')
    assert env.data == {"session_id": "s"} and env.code == 1000
    assert liveavatar.Envelope.parse('{"code":"x","data":null}').code is None
    with pytest.raises(ProtocolError):
        liveavatar.Envelope.parse("<html>")
    packet = liveavatar.DataPacket(liveavatar.CONTROL_TOPIC, liveavatar.Command.START_PTT)
    assert json.loads(packet.serialize()) == {
        "topic": "agent-control",
        "data": {"event_type": "user.start_push_to_talk"},
    }
    assert liveavatar.DataPacket.parse(packet.serialize()) == packet
    with pytest.raises(ProtocolError):
        liveavatar.DataPacket.parse('{"topic":"agent-control","data":{}}')
