"""Random, malformed, oversized and out-of-order Socket.IO events from one app, while another
app's conversation goes on: each event gets an acknowledgement that is a success or a specific
error, and the other app's audio, transcripts and recording are untouched."""

from __future__ import annotations

import base64

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from talkgate.errors import ErrorCode
from tests.support.gate import AppClient, connect, paced_turn
from tests.support.hostile import count, hostile
from tests.support.recordings import expected_mix, find, noise, wav_pcm
from tests.support.timing import wait_until

EVENTS = [
    "conversation_start",
    "user-audio-start",
    "send_audio",
    "user-audio-end",
    "user_activity_signal",
    "conversation_message",
    "conversation_end",
]
CODES = {c.value for c in ErrorCode}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
audio_payloads = st.one_of(
    st.binary(max_size=4000).map(lambda b: {"audio": base64.b64encode(b).decode()}),  # odd sizes too
    st.text(max_size=200).map(lambda t: {"audio": t}),  # not base64, or base64 without padding
    st.binary(max_size=4000),  # a binary attachment
    st.binary(max_size=4000).map(lambda b: {"audio": b}),
    st.integers(129_000, 300_000).map(lambda n: {"audio": base64.b64encode(bytes(n)).decode()}),  # too big
    st.just({"audio": ""}),
)
start_payloads = st.fixed_dictionaries(
    {},
    optional={
        "voice": st.sampled_from(["default", "female", "male", "robot", ""]) | st.text(max_size=20),
        "inputFormat": st.sampled_from(["pcm_16000", "ogg_opus", "webm_opus", "aac", "mp3"]),
        "agentId": st.text(max_size=30),
        "metadata": json_values,
        "dynamicVariables": json_values,
        "overrides": json_values,
    },
)
message_payloads = st.fixed_dictionaries(
    {"type": st.sampled_from(["contextual_update", "user_message", "other"]) | st.text(max_size=20)},
    optional={"text": st.text(max_size=200) | json_values, "context": st.text(max_size=200)},
)
events = st.one_of(
    st.tuples(st.sampled_from(EVENTS), json_values | audio_payloads),
    st.tuples(st.just("send_audio"), audio_payloads),
    st.tuples(st.just("conversation_start"), start_payloads | json_values),
    st.tuples(st.just("conversation_message"), message_payloads),
    st.tuples(st.text(min_size=1, max_size=30), json_values),  # events talkgate does not know
)


def check_ack(event: str, ack: object) -> None:
    assert isinstance(ack, dict), (event, ack)
    if ack.get("ok") is True:
        return
    assert ack.get("ok") is False, (event, ack)
    error = ack["error"]
    assert error["code"] in CODES and isinstance(error["message"], str) and error["message"], (event, ack)
    assert error["message"] != "internal error", (event, ack)


@pytest.mark.realtime
def test_random_event_sequences_get_specific_errors_and_disturb_no_one(gate, driver, no_unhandled_errors):
    witness = driver.run(connect(gate, "witness"))
    attacker = driver.run(connect(gate, "mallory"))
    first, second = noise(500, seed=81), noise(400, seed=82)
    try:
        cid = driver.run(witness.call("conversation_start", {"voice": "default"}))["conversationId"]
        driver.run(paced_turn(witness, first, 1))

        @hostile
        @given(st.lists(events, min_size=1, max_size=10))
        def attack(sequence: list[tuple[str, object]]) -> None:
            for event, payload in sequence:
                count("socket.io events")
                check_ack(event, driver.run(attacker.call(event, payload)))

        attack()
        assert attacker.sio.connected  # no input closed the attacker's own socket either
        driver.run(finish_witness(gate, witness, cid, first, second))
    finally:
        driver.run(attacker.sio.disconnect())
        driver.run(witness.sio.disconnect())
    rt = gate.app.runtime
    # Every conversation ends, the attacker's too (its socket's disconnect ends it).
    driver.run(wait_until(lambda: not rt.relays and not rt.recordings.live))


async def finish_witness(gate, witness: AppClient, cid: str, first: bytes, second: bytes) -> None:
    await paced_turn(witness, second, 2)
    assert witness.agent_audio() == first + second
    assert not witness.of("conversation_error")
    assert (await witness.call("conversation_end"))["ok"]
    (ended,) = await witness.wait_for("conversation_ended")
    assert ended["conversationId"] == cid and ended["reason"] == "client"
    async with httpx.AsyncClient() as client:
        wav = await client.get(ended["audioUrl"], headers=gate.headers("witness"))
    pcm = wav_pcm(wav.content)
    placements, at = [], 0
    for clip in (first, first, second, second):  # caller, agent's echo, caller, echo: in that order
        at = find(pcm, clip[:64], at)
        assert at >= 0
        placements.append((at, clip))
        at += len(clip)
    assert pcm == expected_mix(len(pcm), placements)
