import time

import pytest

from talkgate.codecs import StreamDecoder, decode_file
from talkgate.errors import AudioError
from talkgate.protocol.app_events import InputCodec
from tests.support.audio import best_correlation, encode, speechlike

pytestmark = pytest.mark.unit

SPEECH = speechlike(1500)


@pytest.mark.parametrize("kind", ["mp3", "webm_opus", "ogg_opus", "aac", "mp4_aac"])
def test_whole_files_decode_to_the_signal_that_was_encoded(kind: str) -> None:
    pcm = decode_file(encode(SPEECH, kind))
    r, _ = best_correlation(SPEECH, pcm)
    assert r >= 0.9
    assert abs(len(pcm) - len(SPEECH)) <= 0.1 * len(SPEECH)


@pytest.mark.parametrize("codec", [InputCodec.WEBM_OPUS, InputCodec.OGG_OPUS, InputCodec.AAC])
def test_streams_decode_incrementally_while_the_turn_goes_on(codec: InputCodec) -> None:
    data = encode(SPEECH, codec.value)
    decoder = StreamDecoder(codec)
    half = len(data) * 2 // 3
    for i in range(0, half, 500):
        decoder.feed(data[i : min(i + 500, half)])
    # The stream is still open: PCM comes out before the release (the test timeout bounds this).
    early = b""
    while len(early) < len(SPEECH) // 3:
        early += decoder.take()
        time.sleep(0.005)
    decoder.feed(data[half:])
    pcm = early + decoder.finish()
    r, _ = best_correlation(SPEECH, pcm)
    assert r >= 0.9


def test_mp4_turns_decode_at_release() -> None:
    decoder = StreamDecoder(InputCodec.MP4_AAC)
    decoder.feed(encode(SPEECH, "mp4_aac"))
    assert decoder.take() == b""
    r, _ = best_correlation(SPEECH, decoder.finish())
    assert r >= 0.9


@pytest.mark.parametrize("codec", [InputCodec.WEBM_OPUS, InputCodec.OGG_OPUS, InputCodec.MP4_AAC])
def test_a_broken_stream_is_a_clear_error(codec: InputCodec) -> None:
    decoder = StreamDecoder(codec)
    decoder.feed(b"this is not audio at all, just text" * 20)
    with pytest.raises(AudioError) as caught:
        decoder.finish()
    assert caught.value.code.value == "bad_audio"
    assert codec.value in caught.value.message


def test_a_turn_longer_than_the_limit_is_refused() -> None:
    decoder = StreamDecoder(InputCodec.OGG_OPUS, max_bytes=1000)
    with pytest.raises(AudioError):
        decoder.feed(bytes(1001))
    decoder.abort()
