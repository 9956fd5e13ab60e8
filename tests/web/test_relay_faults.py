"""Dialects, provider faults, interruptions and keep-alives of the relay, against real servers."""

import asyncio
import base64

import httpx
import pytest
import websockets

from talkgate.protocol import convai
from tests.support.audio import speech
from tests.support.gate import connect, gated, start_gate
from tests.support.provider_socket import provider_cid, sim_frames, upstream_kinds
from tests.support.servers import start_simulator
from tests.support.timing import wait_until


async def ptt_turn(client, pcm: bytes) -> None:
    await client.call("user-audio-start")
    await client.call("send_audio", {"audio": base64.b64encode(pcm).decode()})
    await client.call("user-audio-end")


async def test_silence_dialect_and_user_activity_keepalive_work_with_a_strict_provider(
    tmp_path, strict_simulator
):
    async with gated(
        tmp_path, strict_simulator, ptt_turn_end="silence", keepalive="user_activity", ptt_silence_ms=700
    ) as (gate, client):
        cid = await provider_cid(gate, (await client.call("conversation_start"))["conversationId"])
        said = speech(300)
        await ptt_turn(client, said)
        await client.call("user_activity_signal")
        (transcript,) = await client.wait_for(
            "conversation_message", pred=lambda p: p["type"] == "user_transcript"
        )
        assert transcript["text"].startswith("[0.30 s")
        kinds = upstream_kinds(await sim_frames(strict_simulator, cid))
        assert "user_message_begin" not in kinds and "end_user_audio" not in kinds
        assert kinds[:2] == ["conversation_initiation_client_data", "user_audio_chunk"]
        assert kinds.count("user_audio_chunk") == 1 + 7  # the turn, then 700 ms of silence in 100 ms chunks
        assert not client.of("conversation_error")


async def test_seed_dialect_against_a_strict_provider_names_the_setting_to_change(tmp_path, strict_simulator):
    async with gated(tmp_path, strict_simulator) as (_gate, client):
        await client.call("conversation_start")
        await client.call("user-audio-start")
        (error,) = await client.wait_for("conversation_error")
        assert error["code"] == "provider_rejected_dialect" and error["fatal"] is True
        assert "TALKGATE_PTT_TURN_END=silence" in error["message"]
        (ended,) = await client.wait_for("conversation_ended")
        assert ended["reason"] == "error"
        # the socket still works: a new conversation can start
        assert (await client.call("conversation_start"))["ok"]


async def test_text_keepalive_against_a_strict_provider_names_its_setting(tmp_path, strict_simulator):
    async with gated(tmp_path, strict_simulator) as (_gate, client):
        await client.call("conversation_start")
        await client.call("user_activity_signal")
        (error,) = await client.wait_for("conversation_error")
        assert "TALKGATE_KEEPALIVE=user_activity" in error["message"]


@pytest.mark.realtime
async def test_talkgate_sends_keepalives_by_itself_between_turns_only(tmp_path, simulator):
    async with gated(tmp_path, simulator, keepalive_interval_s=0.1) as (gate, client):
        cid = await provider_cid(gate, (await client.call("conversation_start"))["conversationId"])
        for _ in range(50):  # wait until at least two keep-alives have reached the provider
            kinds = upstream_kinds(await sim_frames(simulator, cid))
            if kinds.count("text") >= 2:
                break
            await asyncio.sleep(0.05)
        assert kinds.count("text") >= 2
        await client.call("user-audio-start")
        before = upstream_kinds(await sim_frames(simulator, cid)).count("text")
        await asyncio.sleep(0.35)  # a turn is open: no keep-alive may go out during it
        during = upstream_kinds(await sim_frames(simulator, cid)).count("text")
        assert during == before
        await client.call("user-audio-end")


async def test_inactivity_timeout_is_on_the_upstream_url(tmp_path):
    seen: list[str] = []

    async def provider(ws):
        seen.append(ws.request.path)
        await ws.recv()
        await ws.send(convai.ConversationInitiationMetadata("conv_x").serialize())
        await ws.wait_closed()

    async with websockets.serve(provider, "127.0.0.1", 0) as fake:
        port = fake.sockets[0].getsockname()[1]
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        from talkgate.serving import running

        async def signed(_):
            return JSONResponse(
                {
                    "signed_url": f"ws://127.0.0.1:{port}/v1/convai/conversation?agent_id=a&conversation_signature=s"
                }
            )

        with running(Starlette(routes=[Route("/v1/convai/conversation/get-signed-url", signed)])) as rest:
            for name, overrides, expected in (
                ("signal", {}, "&inactivity_timeout=180"),
                ("zero", {"inactivity_timeout": 0}, None),
                # A real key's default (the published API) sends no unpublished parameter.
                ("real-key", {"simulator_mode": False}, None),
                ("real-key-silence", {"simulator_mode": False, "inactivity_timeout": 120}, None),
                (
                    "real-key-signal",
                    {"simulator_mode": False, "ptt_turn_end": "signal"},
                    "&inactivity_timeout=180",
                ),
            ):
                gate = start_gate(tmp_path / name, None, elevenlabs_base_url=rest.http_url, **overrides)
                client = await connect(gate)
                try:
                    assert (await client.call("conversation_start"))["ok"]
                finally:
                    await client.sio.disconnect()
                    gate.server.stop()
                if expected:
                    assert seen[-1].endswith(expected)
                else:
                    assert "inactivity_timeout" not in seen[-1]


async def test_provider_unreachable_or_refusing_the_key_is_a_clear_fatal_error(tmp_path, simulator):
    for overrides, code in (
        ({"elevenlabs_base_url": "http://127.0.0.1:9"}, "provider_unreachable"),
        ({"elevenlabs_api_key": "wrong-key"}, "provider_auth"),
    ):
        from pydantic import SecretStr

        if "elevenlabs_api_key" in overrides:
            overrides = {"elevenlabs_api_key": SecretStr(overrides["elevenlabs_api_key"])}
        gate = start_gate(tmp_path / code, simulator, **overrides)
        client = await connect(gate)
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            ack = await client.call("conversation_start")
            assert ack["error"]["code"] == code
            (error,) = await client.wait_for("conversation_error")
            assert error["fatal"] is True and loop.time() - t0 < 1.0
            assert (await client.wait_for("conversation_ended"))[0]["reason"] == "error"
            assert "wrong-key" not in error["message"] and "sim-test-key" not in error["message"]
        finally:
            await client.sio.disconnect()
            gate.server.stop()


@pytest.mark.realtime
async def test_provider_closing_mid_turn_ends_the_session_within_a_second(tmp_path):
    sim = start_simulator(max_duration_s=0.6)
    gate = start_gate(tmp_path, sim)
    client = await connect(gate)
    bystander = await connect(gate, "bob")
    try:
        await bystander.call("conversation_start")
        await client.call("conversation_start")
        await client.call("user-audio-start")
        await client.call("send_audio", {"audio": base64.b64encode(speech(40)).decode()})
        (ended,) = await client.wait_for("conversation_ended")
        assert ended["reason"] == "agent"  # max duration is a normal close (1000)
        ack = await client.call("send_audio", {"audio": base64.b64encode(speech(40)).decode()})
        assert ack["error"]["code"] == "no_conversation"
    finally:
        await client.sio.disconnect()
        await bystander.sio.disconnect()
        gate.server.stop()
        sim.stop()


@pytest.mark.realtime
async def test_provider_timeout_1002_is_a_fatal_timeout_error(tmp_path):
    sim = start_simulator(input_timeout_s=0.3)
    try:
        async with gated(tmp_path, sim, keepalive_interval_s=60, inactivity_timeout=0) as (_gate, client):
            await client.call("conversation_start")
            (error,) = await client.wait_for("conversation_error")
            assert error["code"] == "provider_timeout" and "transport_receive_timeout" in error["message"]
            assert (await client.wait_for("conversation_ended"))[0]["reason"] == "error"
    finally:
        sim.stop()


async def test_interruption_drops_older_agent_audio_but_keeps_the_reply(tmp_path, simulator):
    async with gated(tmp_path, simulator) as (_gate, client):
        await client.call("conversation_start")
        await ptt_turn(client, speech(2000, 1))  # the agent "plays" 2 s
        await client.wait_for("agent_audio", 20)
        await client.call("user-audio-start")  # talk over it: interruption with the new turn's id
        (interrupt,) = await client.wait_for(
            "conversation_message", pred=lambda p: p["type"] == "interruption"
        )
        (correction,) = await client.wait_for(
            "conversation_message", pred=lambda p: p["type"] == "agent_response_correction"
        )
        assert correction["text"].endswith("...") and correction["original"].startswith("I heard")
        reply = speech(100, 2)
        await client.call("send_audio", {"audio": base64.b64encode(reply).decode()})
        await client.call("user-audio-end")
        audio = await client.wait_for("agent_audio", 21)
        assert audio[-1]["eventId"] == interrupt["eventId"]  # same id as the interruption: kept
        assert base64.b64decode(audio[-1]["audio"]) == reply


async def test_a_dropped_app_socket_ends_its_conversation_cleanly(tmp_path, simulator):
    gate = start_gate(tmp_path, simulator)
    client = await connect(gate)
    try:
        cid = await provider_cid(gate, (await client.call("conversation_start"))["conversationId"])
        await client.call("user-audio-start")
        await client.sio.disconnect()
        for _ in range(100):
            async with httpx.AsyncClient() as http:
                log = (await http.get(f"{simulator.http_url}/_simulator/conversations/{cid}/frames")).json()
            if log["ended"]:
                break
            await asyncio.sleep(0.02)
        assert log["ended"] is True
        assert not gate.app.runtime.relays
    finally:
        gate.server.stop()


async def test_slow_app_gets_agent_audio_dropped_not_unbounded_memory(tmp_path, simulator):
    gate = start_gate(tmp_path, simulator)
    # Simulate an app that stops reading: report a deep backlog for its socket.
    client = await connect(gate)
    try:
        await client.call("conversation_start")
        relay = next(iter(gate.app.runtime.relays.values()))
        relay._app_backlog = lambda: 10_000
        await ptt_turn(client, speech(500))
        (error,) = await client.wait_for("conversation_error")
        assert error == {
            "code": "slow_consumer",
            "fatal": False,
            "message": "the app is not reading fast enough; agent audio is being dropped",
        }
        await client.wait_for("conversation_message", pred=lambda p: p["type"] == "agent_response")
        # The reply's five audio frames follow its text upstream: each is dropped, none reaches the app.
        await wait_until(lambda: relay.stats.audio_dropped_slow_app == 5)
        assert not client.of("agent_audio")
    finally:
        await client.sio.disconnect()
        gate.server.stop()
