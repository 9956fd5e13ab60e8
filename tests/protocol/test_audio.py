import base64
import math
import struct
import warnings

import numpy as np
import pytest

from talkgate.errors import AudioError, ErrorCode
from talkgate.protocol import audio
from talkgate.protocol.audio import PROVIDER_FORMATS, AudioFormat, Encoding

pytestmark = pytest.mark.unit

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop  # the stdlib's G.711 reference, removed in 3.13


def sine(n: int, rate: int = 16000, hz: float = 440.0, amp: float = 0.5) -> bytes:
    t = np.arange(n) / rate
    return (np.sin(2 * np.pi * hz * t) * amp * 32767).astype("<i2").tobytes()


def test_every_provider_format_parses_and_names_itself():
    names = [f.name for f in PROVIDER_FORMATS]
    assert names == ["pcm_8000", "pcm_16000", "pcm_22050", "pcm_24000", "pcm_44100", "pcm_48000", "ulaw_8000"]
    for name in names:
        assert AudioFormat.parse(name).name == name
    assert AudioFormat.parse("ulaw_8000").bytes_per_second == 8000
    assert AudioFormat.parse("pcm_16000").bytes_for_ms(100) == 3200


@pytest.mark.parametrize("bad", ["pcm_11025", "mp3_44100", "", "PCM_16000"])
def test_unknown_format_is_a_bad_format_error(bad):
    with pytest.raises(AudioError) as err:
        AudioFormat.parse(bad)
    assert err.value.code is ErrorCode.BAD_FORMAT


def test_ulaw_matches_the_g711_reference_for_every_sample():
    pcm = np.arange(-32768, 32768, dtype="<i2").tobytes()
    assert audio.pcm16_to_ulaw(pcm) == audioop.lin2ulaw(pcm, 2)
    codes = bytes(range(256))
    assert audio.ulaw_to_pcm16(codes) == audioop.ulaw2lin(codes, 2)


def test_ulaw_round_trip_keeps_speech_close():
    pcm = sine(800)
    back = np.frombuffer(audio.ulaw_to_pcm16(audio.pcm16_to_ulaw(pcm)), "<i2").astype(float)
    orig = np.frombuffer(pcm, "<i2").astype(float)
    assert np.max(np.abs(back - orig)) < 0.03 * 32768


@pytest.mark.parametrize("src", audio.PROVIDER_RATES)
@pytest.mark.parametrize("dst", audio.PROVIDER_RATES)
def test_resample_between_all_provider_rates_keeps_duration_and_pitch(src, dst):
    pcm = sine(src // 2, rate=src, hz=300)  # half a second
    out = audio.resample_pcm16(pcm, src, dst)
    assert len(out) // 2 == round(src // 2 * dst / src)
    samples = np.frombuffer(out, "<i2").astype(float)
    spectrum = np.abs(np.fft.rfft(samples))
    peak_hz = np.argmax(spectrum) * dst / len(samples)
    assert abs(peak_hz - 300) < 5


def test_convert_pcm_to_ulaw_and_back_changes_rate_and_encoding():
    pcm16k = sine(1600)
    u = audio.convert(pcm16k, audio.PCM_16000, audio.ULAW_8000)
    assert len(u) == 800
    back = audio.convert(u, audio.ULAW_8000, audio.PCM_16000)
    assert len(back) == 3200


def test_mix_sums_pads_and_clips():
    a = struct.pack("<3h", 1000, 30000, -30000)
    b = struct.pack("<2h", 500, 10000)
    assert struct.unpack("<3h", audio.mix_pcm16(a, b)) == (1500, 32767, -30000)
    assert audio.mix_pcm16(b, a) == audio.mix_pcm16(a, b)
    assert audio.mix_pcm16(b"", b) == b


def test_base64_is_strict():
    assert audio.b64decode_audio(base64.b64encode(b"\x01\x02").decode()) == b"\x01\x02"
    for bad in ["abc", "!!!!", "AAA=A", "YWJj\n", 12]:
        with pytest.raises(AudioError) as err:
            audio.b64decode_audio(bad)  # type: ignore[arg-type]
        assert err.value.code is ErrorCode.BAD_BASE64


def test_base64_over_the_limit_is_refused_before_decoding():
    text = base64.b64encode(bytes(1000)).decode()
    with pytest.raises(AudioError) as err:
        audio.b64decode_audio(text, max_bytes=999)
    assert err.value.code is ErrorCode.CHUNK_TOO_LARGE
    assert audio.b64decode_audio(text, max_bytes=1000) == bytes(1000)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.EMPTY_AUDIO),
        (b"\x00\x01\x02", ErrorCode.BAD_AUDIO),
        (bytes(12), ErrorCode.CHUNK_TOO_LARGE),
    ],
)
def test_pcm16_validation_errors(data, code):
    with pytest.raises(AudioError) as err:
        audio.validate_pcm16(data, max_bytes=10)
    assert err.value.code is code


def test_levels():
    assert audio.rms(bytes(320)) == 0.0
    assert audio.dbfs(0.0) == -math.inf
    full = struct.pack("<2h", 32767, -32768)
    assert audio.rms(full) == pytest.approx(1.0, abs=1e-4)
    assert audio.dbfs(audio.rms(sine(16000, amp=0.5))) == pytest.approx(-9.03, abs=0.1)


def test_silence_and_tone_have_their_format():
    assert audio.silence(audio.PCM_16000, 100) == bytes(3200)
    assert audio.silence(audio.ULAW_8000, 10) == b"\xff" * 80
    assert audio.ulaw_to_pcm16(audio.silence(audio.ULAW_8000, 10)) == bytes(160)
    t = audio.tone(AudioFormat(Encoding.PCM, 24000), 100)
    assert len(t) == 4800 and audio.rms(t) > 0.1


def test_wav_header_round_trip_and_chunk_walk():
    pcm = sine(100)
    blob = audio.wav_bytes(pcm, 16000)
    assert len(blob) == audio.WAV_HEADER_SIZE + len(pcm)
    info = audio.parse_wav_header(blob)
    assert (info.sample_rate, info.channels, info.bits, info.data_offset, info.data_bytes) == (
        16000,
        1,
        16,
        44,
        200,
    )
    # An extra LIST chunk before data is walked over.
    extra = blob[:36] + b"LIST" + struct.pack("<I", 4) + b"INFO" + blob[36:]
    assert audio.parse_wav_header(extra).data_offset == 56
    with pytest.raises(AudioError):
        audio.parse_wav_header(b"RIFX" + blob[4:])
