"""Each push-to-talk dialect default against each simulator behaviour, through the relay over real
sockets: a turn gets its transcript and the agent's audio where the combination can work, and the
user gets the error naming the setting where it cannot."""

import base64

import httpx
import pytest

from tests.support.audio import speech
from tests.support.gate import gated
from tests.support.provider_socket import provider_cid, sim_frames, upstream_kinds
from tests.support.servers import SIM_KEY, start_simulator_behaving
from tests.support.timing import poll_until

# talkgate's dialect configurations: a real key's defaults (not the built-in simulator, nothing
# set), the signal dialect, and the silence turn end chosen explicitly where auto means signal.
CONFIGS = {
    "auto_real_key": {"simulator_mode": False},
    "signal": {"ptt_turn_end": "signal", "keepalive": "text"},
    "silence": {"simulator_mode": True, "ptt_turn_end": "silence", "keepalive": "user_activity"},
}
SEED_TYPES = {"user_message_begin", "end_user_audio", "text"}


async def ptt_turn(client, pcm: bytes) -> None:
    await client.call("user-audio-start")
    for i in range(0, len(pcm), 3200):
        await client.call("send_audio", {"audio": base64.b64encode(pcm[i : i + 3200]).decode()})
    await client.call("user-audio-end")


async def test_a_real_key_and_an_agent_id_alone_hold_a_turn_with_a_strict_provider(
    tmp_path, strict_simulator
):
    # A deployer's configuration: ELEVENLABS_API_KEY and ELEVENLABS_BASE_URL pointing at a provider
    # that is not the built-in simulator, an agent id, and no dialect setting.
    async with gated(tmp_path, strict_simulator, simulator_mode=False) as (gate, client):
        assert gate.settings.ptt_turn_end is None and gate.settings.keepalive is None
        cid = (await client.call("conversation_start"))["conversationId"]
        said = speech(600)
        await ptt_turn(client, said)
        await client.call("user_activity_signal")
        (transcript,) = await client.wait_for(
            "conversation_message", pred=lambda p: p["type"] == "user_transcript"
        )
        assert transcript["text"].startswith("[0.60 s")
        while len(client.agent_audio()) < len(said):
            await client.wait_for("agent_audio", len(client.of("agent_audio")) + 1)
        assert client.agent_audio() == said  # the echo agent plays the turn back, byte for byte
        kinds = upstream_kinds(await sim_frames(strict_simulator, await provider_cid(gate, cid)))
        assert "user_activity" in kinds
        assert not {"user_message_begin", "end_user_audio", "text"} & set(kinds)
        assert not client.of("conversation_error")


async def turn_is_answered(client, said: bytes) -> None:
    (transcript,) = await client.wait_for(
        "conversation_message", pred=lambda p: p["type"] == "user_transcript"
    )
    assert transcript["text"].startswith(f"[{len(said) / 32000:.2f} s")
    while len(client.agent_audio()) < len(said):
        await client.wait_for("agent_audio", len(client.of("agent_audio")) + 1)
    assert client.agent_audio() == said


def provider_transcript(sim, cid: str) -> list[dict]:
    r = httpx.get(f"{sim.http_url}/v1/convai/conversations/{cid}", headers={"xi-api-key": SIM_KEY})
    return list(r.json()["transcript"])


@pytest.mark.parametrize("behaviour", ["signal", "strict", "ignore_unknown"])
@pytest.mark.parametrize("config", list(CONFIGS))
async def test_each_dialect_against_each_simulator_behaviour(tmp_path, config, behaviour):
    sim = start_simulator_behaving(behaviour)
    try:
        async with gated(tmp_path, sim, **CONFIGS[config]) as (gate, client):
            cid = await provider_cid(gate, (await client.call("conversation_start"))["conversationId"])
            said = speech(500)
            await ptt_turn(client, said)
            await client.call("user_activity_signal")  # the keep-alive, as the app may send it

            def kinds() -> list[str]:
                r = httpx.get(f"{sim.http_url}/_simulator/conversations/{cid}/frames")
                return upstream_kinds(r.json()["frames"])

            if config != "signal":
                await turn_is_answered(client, said)
                assert not SEED_TYPES & set(kinds()) and "user_activity" in kinds()
                assert not client.of("conversation_error")
            elif behaviour == "signal":
                await turn_is_answered(client, said)
                assert {"user_message_begin", "end_user_audio", "text"} <= set(kinds())
            elif behaviour == "strict":
                # The provider closes at the turn's first message, while the turn's audio is already on
                # its way behind it: the user still hears which setting to change.
                error = (await client.wait_for("conversation_error"))[0]
                assert error["code"] == "provider_rejected_dialect" and error["fatal"] is True
                assert "TALKGATE_PTT_TURN_END=silence" in error["message"]
                assert (await client.wait_for("conversation_ended"))[0]["reason"] == "error"
            else:
                # A provider that ignores the turn's end never closes it: with no silence after the
                # speech its VAD waits on. This is why signal needs talkgate doctor's word first.
                poll_until(
                    lambda: "text" in kinds(), what="the keep-alive after the turn reached the provider"
                )
                assert provider_transcript(sim, cid) == []
                assert not client.of("conversation_error")
    finally:
        sim.stop()
