"""Garbage at the wire: raw Engine.IO/Socket.IO frames and media-socket frames. A bad frame may
close the socket that sent it (that is Engine.IO's rule for protocol errors), never the server;
media frames are skipped one by one and the valid audio around them is recorded exactly."""

from __future__ import annotations

import base64
import json

import httpx
import websockets
from hypothesis import given
from hypothesis import strategies as st

from talkgate.web.media import media_url
from tests.support.gate import connect
from tests.support.hostile import count, hostile
from tests.support.recordings import find, noise, wav_pcm
from tests.support.timing import TIMEOUT, wait_until

json_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
).map(json.dumps)
eio_frames = st.one_of(
    st.text(max_size=120),
    st.binary(max_size=120),
    st.builds(lambda t: "4" + t, st.text(max_size=60)),
    st.builds(lambda t: "42" + t, json_text | st.text(max_size=60)),
    st.builds(lambda n, t: f"42{n}" + t, st.integers(0, 10**12), json_text),
    st.builds(lambda n, t: f"45{n}-" + t, st.integers(0, 5), json_text),  # attachments that never come
    st.builds(lambda t: f"451-{t}", st.just('["send_audio",{"_placeholder":true,"num":7}]')),
    st.sampled_from(["1", "2", "3", "5", "6", "40", "41", "44{}", "4x", "0", ""]),
)


def test_random_engineio_frames_close_at_most_their_own_socket(gate, driver, no_unhandled_errors):
    witness = driver.run(connect(gate, "witness"))
    base = gate.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    token = gate.token("mallory")

    async def attack_once(frames: list[str | bytes]) -> None:
        async with websockets.connect(base, max_size=None) as ws:
            await ws.recv()  # Engine.IO open packet
            await ws.send("40" + json.dumps({"token": token}))
            assert (await ws.recv()).startswith("40")
            try:
                for frame in frames:
                    await ws.send(frame)
                await ws.send('42["conversation_end"]')
            except websockets.ConnectionClosed:
                pass  # a protocol error closes this socket: allowed

    try:
        assert driver.run(witness.call("conversation_start", {"voice": "default"}))["ok"]

        @hostile
        @given(st.lists(eio_frames, min_size=1, max_size=8))
        def attack(frames: list[str | bytes]) -> None:
            count("engine.io frames", len(frames))
            driver.run(attack_once(frames))
            # The server still takes a new app, and the witness's conversation still answers.
            assert driver.run(witness.call("user_activity_signal"))["ok"]

        attack()
        count("engine.io frames")
        driver.run(attack_once(["42" + json.dumps(["send_audio", {"audio": "A" * 2_000_000}])]))  # > 1 MB
        assert driver.run(witness.call("conversation_end"))["ok"]
    finally:
        driver.run(witness.sio.disconnect())
    driver.run(wait_until(lambda: not gate.app.runtime.relays))


media_garbage = st.one_of(
    st.text(max_size=80),
    json_text,
    st.builds(
        lambda t, a: json.dumps({"type": t, "conversation_id": "conv_fuzz", "audio": a}),
        st.sampled_from(["audio_input", "audio_output", "call_end_soon", "ping"]) | st.text(max_size=12),
        st.text(max_size=40) | st.integers() | st.none(),
    ),
    st.builds(  # valid audio for another call
        lambda b: json.dumps(
            {"type": "audio_input", "conversation_id": "conv_other", "audio": base64.b64encode(b).decode()}
        ),
        st.binary(min_size=2, max_size=64),
    ),
    st.binary(min_size=1, max_size=64)
    .filter(lambda b: len(b) % 2)
    .map(  # odd byte count
        lambda b: json.dumps(
            {"type": "audio_input", "conversation_id": "conv_fuzz", "audio": base64.b64encode(b).decode()}
        )
    ),
)
good_audio = st.integers(0, 2**31).map(lambda seed: noise(20, seed=seed))  # 640 bytes, distinct
media_frames = st.lists(
    st.tuples(st.just("good"), good_audio) | st.tuples(st.just("bad"), media_garbage), max_size=12
)


def test_random_media_frames_are_skipped_and_the_valid_audio_is_recorded_exactly(
    gate, driver, no_unhandled_errors
):
    calls = iter(range(10**6))

    async def one_call(frames: list[tuple[str, object]]) -> None:
        cid = f"conv_fuzz{next(calls)}"
        headers = gate.headers()
        async with httpx.AsyncClient(base_url=gate.url, timeout=TIMEOUT) as client:
            r = await client.post("/api/elevenlabs-signed-url", headers=headers, json={"conversationId": cid})
            assert r.status_code == 200, r.text
            good: list[bytes] = []
            async with websockets.connect(media_url(gate.settings, cid)) as ws:
                for kind, frame in frames:
                    if kind == "good":
                        assert isinstance(frame, bytes)
                        good.append(frame)
                        b64 = base64.b64encode(frame).decode()
                        frame = json.dumps({"type": "audio_input", "conversation_id": cid, "audio": b64})
                    else:
                        assert isinstance(frame, str)
                        frame = frame.replace("conv_fuzz", cid)
                    await ws.send(frame)
                await ws.send(json.dumps({"type": "call_end", "conversation_id": cid}))
                await ws.wait_closed()
            ended = await client.post(f"/api/calls/{cid}/end", headers=headers)
            assert ended.status_code == 200, ended.text
            if not good:
                return
            call = ended.json()
            assert call["audioSource"] == "media_stream"
            pcm = wav_pcm((await client.get(call["audioUrl"], headers=headers)).content)
        at = 0
        for chunk in good:  # in order; a stall over 250 ms between frames may add silence between
            at = find(pcm, chunk, at)
            assert at >= 0
            at += len(chunk)

    @hostile
    @given(media_frames)
    def attack(frames: list[tuple[str, object]]) -> None:
        count("media frames", len(frames) + 1)
        driver.run(one_call(frames))

    attack()
    assert not gate.app.runtime.recordings.live
