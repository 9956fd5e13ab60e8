"""The push-to-talk relay records through the same recorder; compressed turns are decoded."""

import asyncio
import base64

import httpx
import pytest

from tests.support.audio import best_correlation, encode, speechlike
from tests.support.gate import gated
from tests.support.recordings import expected_mix, find, noise, wav_pcm


async def echo_of(client, nbytes: int) -> bytes:
    async def enough() -> bool:
        return sum(len(base64.b64decode(p["audio"])) for p in client.of("agent_audio")) >= nbytes

    await client.wait_for("agent_audio", pred=lambda _p: True)
    while not await enough():
        count = len(client.of("agent_audio"))
        await client.wait_for("agent_audio", count + 1)
    return b"".join(base64.b64decode(p["audio"]) for p in client.of("agent_audio"))


@pytest.mark.realtime
async def test_a_relayed_conversation_is_recorded_with_both_sides_on_one_timeline(gate, app_client):
    caller = noise(300, seed=21)
    started = await app_client.call("conversation_start", {"voice": "default"})
    cid = started["conversationId"]
    await app_client.call("user-audio-start")
    for i in range(0, len(caller), 3200):
        await asyncio.sleep(0.1)  # a microphone's pace: the recording's timeline is arrival time
        chunk = base64.b64encode(caller[i : i + 3200]).decode()
        assert (await app_client.call("send_audio", {"audio": chunk}))["ok"]
    await app_client.call("user-audio-end")
    agent = await echo_of(app_client, len(caller))
    assert agent == caller
    await app_client.call("conversation_end")
    ended = (await app_client.wait_for("conversation_ended"))[0]
    assert ended["audioUrl"] == f"{gate.url}/api/calls/{cid}/audio"

    async with httpx.AsyncClient(base_url=gate.url) as client:
        call = (await client.get(f"/api/calls/{cid}", headers=gate.headers())).json()
        assert (call["audioSource"], call["status"]) == ("relay", "ended")
        assert [t["role"] for t in call["transcript"]] == ["user", "agent"]
        # Call end after the relay ended keeps the relay's recording.
        assert (await client.post(f"/api/calls/{cid}/end", headers=gate.headers())).json()[
            "audioSource"
        ] == "relay"
        pcm = wav_pcm((await client.get(ended["audioUrl"], headers=gate.headers())).content)
    at_caller = find(pcm, caller[:64])
    at_agent = find(pcm, agent[:64], at_caller + len(caller))
    assert at_caller >= 0 and at_agent >= at_caller + len(caller)
    assert pcm == expected_mix(len(pcm), [(at_caller, caller), (at_agent, agent)])


async def test_ogg_opus_turns_are_decoded_and_relayed(gate, app_client):
    speech = speechlike(800)
    ogg = encode(speech, "ogg_opus")
    started = await app_client.call("conversation_start", {"voice": "default", "inputFormat": "ogg_opus"})
    assert started["ok"] and started["inputFormat"] == "ogg_opus"
    await app_client.call("user-audio-start")
    for i in range(0, len(ogg), 777):  # MediaRecorder-like slices, cut anywhere (odd sizes too)
        assert (await app_client.call("send_audio", ogg[i : i + 777]))["ok"]
    ended = await app_client.call("user-audio-end")
    assert ended["ok"] and ended["bytes"] == len(ogg)
    echoed = await echo_of(app_client, int(len(speech) * 0.9))
    r, _ = best_correlation(speech, echoed)
    assert r >= 0.9


async def test_a_broken_compressed_stream_is_a_clear_error_and_the_next_turn_works(gate, app_client):
    await app_client.call("conversation_start", {"voice": "default", "inputFormat": "webm_opus"})
    await app_client.call("user-audio-start")
    await app_client.call("send_audio", b"definitely not a webm stream " * 40)
    ended = await app_client.call("user-audio-end")
    assert ended["ok"] is False and ended["error"]["code"] == "bad_audio"
    assert "webm_opus" in ended["error"]["message"]
    errors = app_client.of("conversation_error")
    assert errors and errors[-1]["code"] == "bad_audio" and errors[-1]["fatal"] is False

    speech = speechlike(600)
    await app_client.call("user-audio-start")
    assert (await app_client.call("send_audio", encode(speech, "webm_opus")))["ok"]
    assert (await app_client.call("user-audio-end"))["ok"]
    r, _ = best_correlation(speech, await echo_of(app_client, int(len(speech) * 0.9)))
    assert r >= 0.9
    assert not app_client.of("conversation_ended")


async def test_an_unknown_input_format_is_refused(gate, app_client):
    r = await app_client.call("conversation_start", {"voice": "default", "inputFormat": "flac"})
    assert r["ok"] is False and r["error"]["code"] == "bad_format"


async def test_when_recording_is_impossible_the_conversation_still_works_and_says_so(tmp_path, simulator):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "spool").write_text("a file where the spool folder should be")
    async with gated(tmp_path, simulator) as (_gate, client):
        started = await client.call("conversation_start", {"voice": "default"})
        assert started["ok"] is True
        assert client.of("conversation_error")[0]["code"] == "storage_error"
        caller = noise(100, seed=22)
        await client.call("user-audio-start")
        await client.call("send_audio", caller)
        await client.call("user-audio-end")
        assert await echo_of(client, len(caller)) == caller
        await client.call("conversation_end")
        ended = (await client.wait_for("conversation_ended"))[0]
        assert ended["audioUrl"] is None and ended["reason"] == "client"


async def test_a_relayed_conversation_without_audio_is_not_recorded(gate, app_client):
    # Nobody spoke and the agent said nothing: a bare WAV header is not a recording (it would
    # outrank the provider's copy), so the call ends without one.
    started = await app_client.call("conversation_start", {"voice": "default"})
    cid = started["conversationId"]
    await app_client.call("conversation_end")
    ended = (await app_client.wait_for("conversation_ended"))[0]
    async with httpx.AsyncClient(base_url=gate.url) as client:
        call = (await client.get(f"/api/calls/{cid}", headers=gate.headers())).json()
        audio = await client.get(f"/api/calls/{cid}/audio", headers=gate.headers())
    assert ended["audioUrl"] is None and audio.status_code == 404
    assert call["status"] == "ended" and call["audioSource"] is None and call["audioBytes"] is None
    assert not list(gate.settings.spool_dir.glob("*.wav.part"))
