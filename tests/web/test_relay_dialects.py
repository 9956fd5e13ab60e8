"""Each push-to-talk dialect default against each simulator behaviour, through the relay over real
sockets: a turn gets its transcript and the agent's audio where the combination can work, and the
user gets the error naming the setting where it cannot."""

import base64

from tests.support.audio import speech
from tests.support.gate import gated
from tests.support.provider_socket import sim_frames, upstream_kinds


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
        kinds = upstream_kinds(await sim_frames(strict_simulator, cid))
        assert "user_activity" in kinds
        assert not {"user_message_begin", "end_user_audio", "text"} & set(kinds)
        assert not client.of("conversation_error")
