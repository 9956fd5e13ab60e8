"""Media-stream recording into talkgate's media socket, call end, and the call-log routes."""

import time

import httpx
import pytest
import websockets

from talkgate.web.media import media_url
from tests.support.gate import start_gate
from tests.support.recordings import direct_turn, expected_mix, find, noise, start_media_call, wav_pcm


@pytest.mark.realtime
async def test_a_media_streamed_call_ends_in_a_call_log_whose_wav_is_the_exact_mix(gate):
    caller = noise(600, seed=1)
    async with httpx.AsyncClient(base_url=gate.url) as client:
        cid = "conv_media_1"
        signed = await start_media_call(client, gate, cid)
        provider_cid, agent = await direct_turn(signed, caller)
        # The provider names its conversation itself; talkgate's call id is never proposed to it.
        assert provider_cid.startswith("conv_") and provider_cid != cid
        assert agent == caller  # the simulator's agent echoes

        r = await client.post(f"/api/calls/{cid}/end", headers=gate.headers())
        assert r.status_code == 200, r.text
        call = r.json()
        assert call["audioSource"] == "media_stream" and call["status"] == "ended"
        assert call["audioUrl"] == f"{gate.url}/api/calls/{cid}/audio"
        audio = await client.get(call["audioUrl"], headers=gate.headers())
        assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"

    pcm = wav_pcm(audio.content)
    at_caller = find(pcm, caller[:64])
    at_agent = find(pcm, agent[:64], at_caller + len(caller))
    assert 0 <= at_caller < 16_000  # the caller spoke within half a second of the call's start
    assert at_agent >= at_caller + len(caller)  # the agent answered after the turn, not over it
    assert pcm == expected_mix(len(pcm), [(at_caller, caller), (at_agent, agent)])
    assert len(pcm) == at_agent + len(agent)


@pytest.mark.realtime
async def test_call_end_is_idempotent_and_the_list_shows_the_call(gate):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        signed = await start_media_call(client, gate, "conv_media_2")
        await direct_turn(signed, noise(200, seed=2), paced=False)
        first = (await client.post("/api/calls/conv_media_2/end", headers=gate.headers())).json()
        again = (await client.post("/api/calls/conv_media_2/end", headers=gate.headers())).json()
        assert first == again
        listed = (await client.get("/api/calls", headers=gate.headers())).json()
        assert listed["total"] == 1
        assert [c["conversationId"] for c in listed["calls"]] == ["conv_media_2"]
        assert listed["calls"][0]["audioSource"] == "media_stream"
        assert (await client.get("/api/calls", headers=gate.headers("bob"))).json()["total"] == 0
        # Paging past the end is an empty page; an offset no database can take is a 422, not a 500.
        far = await client.get("/api/calls?offset=2147483647", headers=gate.headers())
        assert far.status_code == 200 and far.json()["calls"] == []
        huge = await client.get("/api/calls?offset=13473545030382105292439552", headers=gate.headers())
        assert huge.status_code == 422


@pytest.mark.realtime
async def test_audio_supports_range_requests_for_seeking(gate):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        signed = await start_media_call(client, gate, "conv_range")
        await direct_turn(signed, noise(300, seed=3), paced=False)
        await client.post("/api/calls/conv_range/end", headers=gate.headers())
        whole = (await client.get("/api/calls/conv_range/audio", headers=gate.headers())).content
        part = await client.get(
            "/api/calls/conv_range/audio", headers={**gate.headers(), "Range": "bytes=1000-1999"}
        )
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(whole)}"
        assert part.content == whole[1000:2000]
        assert part.headers["accept-ranges"] == "bytes"


@pytest.mark.realtime
async def test_another_users_call_is_not_found_anywhere(gate):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        signed = await start_media_call(client, gate, "conv_alice")
        await direct_turn(signed, noise(200, seed=4), paced=False)
        await client.post("/api/calls/conv_alice/end", headers=gate.headers("alice"))
        bob = gate.headers("bob")
        for method, path in [
            ("GET", "/api/calls/conv_alice"),
            ("GET", "/api/calls/conv_alice/audio"),
            ("POST", "/api/calls/conv_alice/end"),
            ("POST", "/api/calls/conv_alice/chunks"),
        ]:
            r = await client.request(method, path, headers=bob, content=b"\x00\x01")
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path
        # Bob cannot take over Alice's conversation id either.
        r = await client.post(
            "/api/elevenlabs-signed-url",
            headers=bob,
            json={"voice": "default", "conversationId": "conv_alice"},
        )
        assert r.status_code == 409


@pytest.mark.parametrize(
    "path",
    [
        "/api/calls/..%2F..%2Fetc%2Fpasswd",
        "/api/calls/a.b/audio",
        "/api/calls/%00/end",
        "/api/calls/" + "x" * 129,
    ],
)
async def test_path_like_ids_are_refused(gate, path):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        method = "POST" if path.endswith("/end") else "GET"
        r = await client.request(method, path, headers=gate.headers())
        assert r.status_code in (404, 422)


async def test_unsigned_forged_expired_and_unknown_media_sockets_are_refused_before_storing(gate):
    settings = gate.settings
    base = f"ws://127.0.0.1:{gate.server.port}/ws/elevenlabs-media"
    async with httpx.AsyncClient(base_url=gate.url) as client:
        await start_media_call(client, gate, "conv_guarded")
    good = media_url(settings, "conv_guarded")
    refused = [
        f"{base}",
        f"{base}?conversation_id=conv_guarded",
        good.replace("conversation_id=conv_guarded", "conversation_id=conv_other"),  # another id
        good[:-4] + ("0000" if not good.endswith("0000") else "1111"),  # forged signature
        media_url(settings, "conv_guarded", now=time.time() - 7200),  # expired
        media_url(settings, "../../etc/passwd"),  # path-like, even when signed
        media_url(settings, "conv_never_started"),  # signed, but no such call
    ]
    for url in refused:
        with pytest.raises(websockets.InvalidStatus) as caught:
            async with websockets.connect(url):
                pass
        assert caught.value.response.status_code == 403, url
    spool = settings.spool_dir
    assert not spool.exists() or not any(spool.iterdir())
    # The good URL still works after all that.
    async with websockets.connect(good) as ws:
        await ws.send('{"type":"call_end","conversation_id":"conv_guarded"}')
        await ws.wait_closed()


async def test_bad_media_frames_are_skipped_and_the_rest_is_recorded(gate):
    caller = noise(300, seed=5)
    import base64

    async with httpx.AsyncClient(base_url=gate.url) as client:
        await start_media_call(client, gate, "conv_noisy")
        async with websockets.connect(media_url(gate.settings, "conv_noisy")) as ws:
            for frame in [
                "not json",
                '{"type":"audio_input","conversation_id":"conv_noisy","audio":"***"}',
                '{"type":"audio_input","conversation_id":"conv_noisy","audio":"AAE="}',  # 2 bytes: fine
                '{"type":"audio_input","conversation_id":"conv_noisy","audio":"AA=="}',  # odd byte count
                '{"type":"audio_input","conversation_id":"conv_other","audio":"AAA="}',  # another call
                '{"type":"agent_thinking","conversation_id":"conv_noisy"}',  # unknown: logged only
            ]:
                await ws.send(frame)
            b64 = base64.b64encode(caller).decode()
            await ws.send(f'{{"type":"audio_input","conversation_id":"conv_noisy","audio":"{b64}"}}')
            await ws.send('{"type":"call_end","conversation_id":"conv_noisy"}')
            await ws.wait_closed()
        call = (await client.post("/api/calls/conv_noisy/end", headers=gate.headers())).json()
        pcm = wav_pcm((await client.get(call["audioUrl"], headers=gate.headers())).content)
    assert pcm == b"\x00\x01" + caller


@pytest.mark.realtime
async def test_the_call_flow_works_the_same_on_postgresql(tmp_path, simulator, postgres_url):
    gate = start_gate(tmp_path, simulator, database_url=postgres_url)
    caller = noise(300, seed=6)
    cid = f"conv_pg_{int(time.time() * 1000)}"
    try:
        async with httpx.AsyncClient(base_url=gate.url) as client:
            signed = await start_media_call(client, gate, cid, user="pg_user")
            _, agent = await direct_turn(signed, caller)
            call = (await client.post(f"/api/calls/{cid}/end", headers=gate.headers("pg_user"))).json()
            assert (call["audioSource"], call["status"]) == ("media_stream", "ended")
            assert call["startedAt"].endswith("+00:00")
            pcm = wav_pcm((await client.get(call["audioUrl"], headers=gate.headers("pg_user"))).content)
            listed = (await client.get("/api/calls", headers=gate.headers("pg_user"))).json()
            assert cid in [c["conversationId"] for c in listed["calls"]]
        at_caller = find(pcm, caller[:64])
        at_agent = find(pcm, agent[:64], at_caller + len(caller))
        assert pcm == expected_mix(len(pcm), [(at_caller, caller), (at_agent, agent)])
    finally:
        gate.server.stop()


async def test_a_silent_media_stream_is_not_the_calls_recording(gate):
    # A media stream that carried no audio at all is a bare WAV header: attached, it outranked the
    # provider's real recording. It is dropped, and the call end looks for another source.
    async with httpx.AsyncClient(base_url=gate.url) as client:
        cid = "conv_media_silent"
        signed = await start_media_call(client, gate, cid)
        async with websockets.connect(signed) as ws:
            await ws.recv()  # the conversation starts; nobody speaks
        call = (await client.post(f"/api/calls/{cid}/end", headers=gate.headers())).json()
        audio = await client.get(f"/api/calls/{cid}/audio", headers=gate.headers())
    assert call["status"] == "ended" and call["audioSource"] != "media_stream"
    assert call["audioBytes"] != 44 and (call["audioUrl"] is None) == (audio.status_code == 404)
    assert not list(gate.settings.spool_dir.glob("*.wav.part"))  # the header-only file is gone
