import pytest

from talkgate.errors import AudioError, ErrorCode, TurnError
from talkgate.protocol.ptt import AudioAccepted, PushToTalk, TurnEnded, TurnStarted, TurnState

pytestmark = pytest.mark.unit


def test_a_turn_goes_idle_talking_idle_and_counts():
    ptt = PushToTalk()
    assert ptt.start() == TurnStarted(1)
    assert ptt.state is TurnState.TALKING
    assert ptt.audio(b"\x00\x01") == AudioAccepted(1, b"\x00\x01")
    ptt.audio(b"\x00\x01\x02\x03")
    assert ptt.end() == TurnEnded(1, chunks=2, nbytes=6)
    assert ptt.state is TurnState.IDLE
    assert ptt.start() == TurnStarted(2)
    assert ptt.end() == TurnEnded(2, chunks=0, nbytes=0)


@pytest.mark.parametrize(
    ("script", "code"),
    [
        (["audio"], ErrorCode.NOT_RECORDING),
        (["end"], ErrorCode.NOT_RECORDING),
        (["start", "start"], ErrorCode.ALREADY_RECORDING),
        (["start", "end", "end"], ErrorCode.NOT_RECORDING),
        (["start", "end", "audio"], ErrorCode.NOT_RECORDING),
    ],
)
def test_illegal_events_are_typed_errors_and_leave_the_state_unchanged(script, code):
    ptt = PushToTalk()
    *legal, illegal = script
    for step in legal:
        getattr(ptt, step)(*([b"\x00\x00"] if step == "audio" else []))
    before = (ptt.state, ptt.turn)
    with pytest.raises(TurnError) as err:
        getattr(ptt, illegal)(*([b"\x00\x00"] if illegal == "audio" else []))
    assert err.value.code is code
    assert (ptt.state, ptt.turn) == before


def test_empty_audio_is_refused_inside_a_turn():
    ptt = PushToTalk()
    ptt.start()
    with pytest.raises(AudioError) as err:
        ptt.audio(b"")
    assert err.value.code is ErrorCode.EMPTY_AUDIO
    assert ptt.end().chunks == 0


def test_odd_byte_counts_are_bad_audio():
    ptt = PushToTalk()
    ptt.start()
    with pytest.raises(AudioError) as err:
        ptt.audio(b"\x00\x01\x02")
    assert err.value.code is ErrorCode.BAD_AUDIO
