import base64

import pytest

from talkgate.protocol import convai
from talkgate.protocol.audio import PCM_16000, ULAW_8000
from talkgate.protocol.dialect import Dialect, KeepAliveMode, TurnEndMode, rejection_hint
from talkgate.protocol.ptt import AudioAccepted, TurnEnded, TurnStarted

pytestmark = pytest.mark.unit


def test_signal_dialect_is_seed_000():
    d = Dialect()
    assert d.upstream(TurnStarted(1), PCM_16000) == [convai.UserMessageBegin()]
    assert d.upstream(AudioAccepted(1, b"\x01\x00"), PCM_16000) == [convai.UserAudioChunk("AQA=")]
    assert d.upstream(TurnEnded(1, 1, 2), PCM_16000) == [convai.EndUserAudio()]
    assert d.keepalive_event() == convai.TextKeepAlive()


def test_silence_dialect_sends_only_published_messages():
    d = Dialect(turn_end=TurnEndMode.SILENCE, keepalive=KeepAliveMode.USER_ACTIVITY, silence_ms=800)
    assert d.upstream(TurnStarted(1), PCM_16000) == []
    tail = d.upstream(TurnEnded(1, 1, 2), PCM_16000)
    assert len(tail) == 8
    assert all(isinstance(e, convai.UserAudioChunk) for e in tail)
    assert sum(len(base64.b64decode(e.audio_base_64)) for e in tail) == 16000 * 2 * 800 // 1000
    ulaw = d.upstream(TurnEnded(1, 1, 2), ULAW_8000)[0]
    assert set(base64.b64decode(ulaw.audio_base_64)) == {0xFF}
    assert d.keepalive_event() == convai.UserActivity()


def test_rejection_hint_names_the_setting():
    assert "TALKGATE_PTT_TURN_END=silence" in rejection_hint("end_user_audio")
    assert "TALKGATE_PTT_TURN_END=silence" in rejection_hint("user_message_begin")
    assert "TALKGATE_KEEPALIVE=user_activity" in rejection_hint("text_keepalive")
    assert rejection_hint("user_audio_chunk") is None
    assert rejection_hint(None) is None
