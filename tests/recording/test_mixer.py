import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from talkgate.errors import AudioError
from talkgate.recording.mixer import AGENT, CALLER, TimelineMixer

pytestmark = pytest.mark.unit

RATE = 16000


def pcm(values: list[int] | np.ndarray) -> bytes:
    return np.asarray(values, dtype="<i2").tobytes()


def ramp(n: int, start: int = 1) -> bytes:
    return pcm(np.arange(start, start + n))


def samples(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2")


def run(mixer: TimelineMixer, events: list[tuple[float, int, bytes]]) -> bytes:
    out = bytearray()
    for now, track, chunk in events:
        mixer.add(track, chunk, now)
        out += mixer.drain(now)
    return bytes(out + mixer.finish())


def test_contiguous_chunks_of_one_track_come_out_unchanged() -> None:
    chunks = [ramp(1600, 1 + i * 1600) for i in range(5)]
    # Real-time arrival: each 100 ms chunk arrives when it has been recorded.
    out = run(TimelineMixer(), [(0.1 * (i + 1), CALLER, c) for i, c in enumerate(chunks)])
    assert out == b"".join(chunks)


def test_jitter_within_tolerance_does_not_cut_holes() -> None:
    chunks = [ramp(1600, 1 + i * 1600) for i in range(4)]
    arrivals = [0.1, 0.32, 0.31, 0.45]  # late, then a burst
    out = run(TimelineMixer(gap_tolerance_s=0.25), list(zip(arrivals, [CALLER] * 4, chunks, strict=True)))
    assert out == b"".join(chunks)


def test_a_gap_longer_than_the_tolerance_is_kept_as_silence() -> None:
    first, second = ramp(1600), ramp(1600, 5000)
    out = samples(run(TimelineMixer(gap_tolerance_s=0.25), [(0.0, CALLER, first), (2.0, CALLER, second)]))
    assert len(out) == 2 * RATE + 1600
    assert out[:1600].tolist() == samples(first).tolist()
    assert not out[1600 : 2 * RATE].any()
    assert out[2 * RATE :].tolist() == samples(second).tolist()


def test_agent_reply_after_the_turn_follows_it_on_the_timeline() -> None:
    caller = ramp(8000)  # 0.5 s, sent in real time
    agent = ramp(8000, 10_000)  # arrives in one burst 0.6 s after the turn ended
    events = [(0.1 * (i + 1), CALLER, caller[i * 3200 : (i + 1) * 3200]) for i in range(5)]
    events.append((1.1, AGENT, agent))
    out = samples(run(TimelineMixer(), events))
    expected = np.zeros(int(1.1 * RATE) + 8000, dtype=np.int32)
    expected[:8000] += samples(caller)
    expected[int(1.1 * RATE) :] += samples(agent)
    assert out.tolist() == expected.tolist()


def test_overlapping_speech_is_summed_and_clipped() -> None:
    loud = pcm([30000] * 100)
    out = samples(run(TimelineMixer(), [(0.0, CALLER, loud), (0.0, AGENT, pcm([5000] * 50 + [-5000] * 50))]))
    assert out.tolist() == [32767] * 50 + [25000] * 50


def test_stereo_keeps_each_track_on_its_own_channel() -> None:
    out = samples(run(TimelineMixer(channels=2), [(0.0, CALLER, pcm([1, 2, 3])), (0.0, AGENT, pcm([7, 8]))]))
    assert out.tolist() == [1, 7, 2, 8, 3, 0]


def test_drain_hands_out_only_what_no_later_chunk_can_change() -> None:
    mixer = TimelineMixer(gap_tolerance_s=0.25)
    mixer.add(CALLER, ramp(1600), 0.1)
    # The agent track is silent but could still start at its arrival time (≥ now - nothing yet).
    assert mixer.drain(0.1) == b""  # the agent could still land at frame 0 within the tolerance
    out = mixer.drain(0.5)  # both tracks idle past the tolerance: time itself is final
    assert samples(out)[:1600].tolist() == samples(ramp(1600)).tolist()
    assert len(out) == 2 * int(0.5 * RATE)


def test_memory_is_bounded_by_the_lead_whatever_the_call_length() -> None:
    mixer = TimelineMixer(max_lead_s=2.0)
    chunk = ramp(1600)
    total = 0
    peak = 0
    for i in range(6000):  # ten minutes of agent audio, all arriving within one second
        mixer.add(AGENT, chunk, i / 6000)
        total += len(mixer.drain(i / 6000))
        peak = max(peak, mixer.buffered_bytes)
    total += len(mixer.finish())
    assert total == 6000 * len(chunk)
    assert peak <= (2 * RATE + RATE // 4) * 4  # the lead plus a quarter second, as int32


def test_audio_that_would_land_before_committed_audio_goes_after_it() -> None:
    mixer = TimelineMixer(max_lead_s=1.0)
    mixer.add(AGENT, ramp(3 * RATE), 0.0)  # a 3 s burst: 2 s get committed at once
    committed = mixer.drain(0.0)
    assert len(committed) == 2 * 2 * RATE
    assert mixer.add(CALLER, ramp(100), 0.0) == 2 * RATE


def test_odd_byte_counts_are_refused() -> None:
    with pytest.raises(AudioError):
        TimelineMixer().add(CALLER, b"\x01\x02\x03", 0.0)


def test_a_reply_never_starts_over_caller_audio_sent_ahead_of_real_time() -> None:
    caller, agent = ramp(8000), ramp(1600, 20_000)
    mixer = TimelineMixer()
    assert mixer.add(CALLER, caller, 0.3) == 4800  # half a second arrives at once
    assert mixer.add(AGENT, agent, 0.6) == 12800  # the reply arrives before that half second is over
    assert mixer.add(CALLER, ramp(100), 0.85) == 12800  # the caller may still talk over the reply


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=0.6),  # time since the previous chunk
            st.sampled_from([CALLER, AGENT]),
            st.lists(st.integers(-32768, 32767), min_size=1, max_size=400),
        ),
        max_size=30,
    ),
    st.sampled_from([1, 2]),
)
def test_the_output_is_every_chunk_summed_where_it_was_placed_then_clipped(
    events: list[tuple[float, int, list[int]]], channels: int
) -> None:
    """Against a reference that sums everything and clips once: the mixer copies the audio where
    one voice speaks and clips only where voices were summed, and must come out the same."""
    mixer = TimelineMixer(channels=channels, sample_rate=1000, gap_tolerance_s=0.05, max_lead_s=0.5)
    now, out, placed = 0.0, bytearray(), []
    for dt, track, values in events:
        now += dt
        placed.append((mixer.add(track, pcm(values), now), track, values))
        out += mixer.drain(now)
    out += mixer.finish()
    frames = len(out) // (2 * channels)
    reference = np.zeros((frames, channels), dtype=np.int64)
    for start, track, values in placed:
        reference[start : start + len(values), 0 if channels == 1 else track] += values
    expected = np.clip(reference, -32768, 32767).astype("<i2")
    assert samples(bytes(out)).reshape(-1, channels).tolist() == expected.tolist()
