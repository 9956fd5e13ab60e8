"""LiveAvatar push-to-talk sessions: the REST client against the simulator and its
failure envelopes, talkgate's routes (per user, key never handed out), and the page's command
machine, which must be the same table as the Python one."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import websockets
from pydantic import SecretStr

from talkgate.errors import ErrorCode, NotFoundError, ProviderError
from talkgate.protocol.liveavatar import Command, DataPacket
from talkgate.providers.liveavatar import AvatarToken, LiveAvatarProvider
from talkgate.serving import ServerThread
from tests.support.gate import start_gate
from tests.support.recordings import noise, wav_pcm
from tests.support.servers import start_simulator
from tests.support.timing import TIMEOUT

KEY = "sim-liveavatar-key"
AVATAR = "00000000-0000-4000-8000-00000000a1a1"
STATIC = Path(__file__).resolve().parents[2] / "src" / "talkgate" / "static" / "js"


def provider(sim: ServerThread, http: httpx.AsyncClient, key: str = KEY) -> LiveAvatarProvider:
    return LiveAvatarProvider(http, sim.http_url, key, timeout=2.0)


async def sim_session(sim: ServerThread, session_id: str) -> dict:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{sim.http_url}/_simulator/liveavatar/sessions/{session_id}")).json()


async def test_the_rest_client_runs_a_session_through_its_life(simulator):
    async with httpx.AsyncClient() as http:
        la = provider(simulator, http)
        token = await la.create_token(AVATAR, voice_id="v-1", context_id="c-1", language="de")
        room = await la.start(token)
        assert room.session_id == token.session_id and room.livekit_url.endswith("/_liveavatar/room")
        assert room.livekit_client_token and room.max_session_duration == 1200
        await la.keep_alive(token.session_id)
        await la.stop(token.session_id, "USER_CLOSED")
    seen = await sim_session(simulator, token.session_id)
    assert seen["body"] == {
        "mode": "FULL",
        "avatar_id": AVATAR,
        "avatar_persona": {"language": "de", "voice_id": "v-1", "context_id": "c-1"},
        "interactivity_type": "PUSH_TO_TALK",
        "is_sandbox": False,
    }
    assert seen["stoppedReason"] == "USER_CLOSED"


async def test_failure_envelopes_become_clear_talkgate_errors(simulator):
    async with httpx.AsyncClient() as http:
        with pytest.raises(ProviderError) as refused:
            await provider(simulator, http, key="wrong-key").create_token(AVATAR)
        assert refused.value.code is ErrorCode.PROVIDER_AUTH and "Invalid API key" in refused.value.message
        with pytest.raises(ProviderError) as rejected:
            await provider(simulator, http).create_token("")
        assert "avatar_id: field required" in rejected.value.message
        with pytest.raises(NotFoundError, match="session not found"):
            await provider(simulator, http).keep_alive("no-such-session")
        with pytest.raises(ProviderError) as bad_token:
            await provider(simulator, http).start(AvatarToken("s", "not-a-token"))
        assert bad_token.value.code is ErrorCode.PROVIDER_AUTH
        la = provider(simulator, http)
        token = await la.create_token(AVATAR)
        await la.start(token)
        await la.stop(token.session_id)
        with pytest.raises(ProviderError, match="session stopped"):
            await la.keep_alive(token.session_id)
        with pytest.raises(ProviderError) as unknown:
            await la.stop(token.session_id, "BORED")
        assert unknown.value.code is ErrorCode.BAD_REQUEST
        unreachable = LiveAvatarProvider(http, "http://127.0.0.1:9", KEY, timeout=2.0)
        with pytest.raises(ProviderError) as away:
            await unreachable.create_token(AVATAR)
        assert away.value.code is ErrorCode.PROVIDER_UNREACHABLE


async def test_a_slow_provider_is_a_timeout():
    slow = start_simulator(response_delay_s=3.0)
    try:
        async with httpx.AsyncClient() as http:
            with pytest.raises(ProviderError) as late:
                await LiveAvatarProvider(http, slow.http_url, KEY, timeout=0.3).create_token(AVATAR)
        assert late.value.code is ErrorCode.PROVIDER_TIMEOUT
        assert late.value.message == "LiveAvatar timed out while creating a session token"
    finally:
        slow.stop()


@pytest.fixture
def avatar_gate(tmp_path, simulator):
    gate = start_gate(
        tmp_path,
        simulator,
        liveavatar_api_key=SecretStr(KEY),
        liveavatar_base_url=simulator.http_url,
        liveavatar_avatar_id=AVATAR,
        liveavatar_context_id="ctx-1",
    )
    yield gate
    gate.server.stop()


async def test_a_session_is_a_call_log_and_the_key_never_leaves(avatar_gate, simulator):
    gate = avatar_gate
    async with httpx.AsyncClient(base_url=gate.url) as client:
        r = await client.post("/api/liveavatar/session", headers=gate.headers(), json={})
        assert r.status_code == 200, r.text
        s = r.json()
        assert KEY not in r.text and "session_token" not in r.text
        # talkgate's id for the call, chosen before the provider's session (the cap is taken first).
        assert s["transport"] == "simulator" and s["conversationId"].startswith("avatar_")
        assert s["keepAliveIntervalMs"] == 60000 and s["ackTimeoutMs"] == 5000
        cid = s["conversationId"]
        # The page joins the room with the client token and runs one push-to-talk cycle.
        url = f"{s['livekitUrl']}?token={s['livekitToken']}"
        async with websockets.connect(url) as room:
            await room.send(DataPacket("agent-control", Command.START_PTT).serialize())
            assert DataPacket.parse(await room.recv()).event_type == "user.push_to_talk_started"
            await room.send(b"\x01\x00" * 8000)  # half a second of audio inside the window
            await room.send(DataPacket("agent-control", Command.STOP_PTT).serialize())
            events = [DataPacket.parse(await room.recv()).event_type for _ in range(5)]
        assert events[:2] == ["user.push_to_talk_stopped", "user.transcription"]
        for line in ({"role": "user", "text": "hello there"}, {"role": "agent", "text": "hi!"}):
            posted = await client.post(f"/api/calls/{cid}/transcript", headers=gate.headers(), json=line)
            assert posted.json()["ok"]
        assert (
            await client.post(f"/api/liveavatar/session/{cid}/keep-alive", headers=gate.headers())
        ).json() == {"ok": True}
        # Another user reaches none of it.
        for path in (
            f"/api/liveavatar/session/{cid}/keep-alive",
            f"/api/liveavatar/session/{cid}/stop",
            f"/api/calls/{cid}/transcript",
        ):
            other = await client.post(path, headers=gate.headers("bob"), json={"role": "user", "text": "x"})
            assert other.status_code == 404, (path, other.text)
        # The page stops with the endReason it shows (``user_closed``): the provider hears USER_CLOSED.
        stopped = await client.post(
            f"/api/liveavatar/session/{cid}/stop", headers=gate.headers(), json={"reason": "user_closed"}
        )
        again = await client.post(f"/api/liveavatar/session/{cid}/stop", headers=gate.headers(), json={})
        listed = (await client.get("/api/calls", headers=gate.headers())).json()
        late = await client.post(f"/api/liveavatar/session/{cid}/keep-alive", headers=gate.headers())
        late_line = await client.post(
            f"/api/calls/{cid}/transcript", headers=gate.headers(), json={"role": "agent", "text": "late"}
        )
    assert (late_line.status_code, late_line.json()["error"]["code"]) == (409, "call_ended")
    call = stopped.json()
    assert (
        call["status"] == "ended" and call["endReason"] == "user_closed" and call["provider"] == "liveavatar"
    )
    assert call["transcript"] == [{"role": "user", "text": "hello there"}, {"role": "agent", "text": "hi!"}]
    assert call["agentId"] == AVATAR and call["durationMs"] >= 0
    assert again.json() == call  # idempotent
    assert [c["conversationId"] for c in listed["calls"]] == [cid]
    assert late.status_code == 400 and late.json()["error"]["code"] == "no_conversation"
    seen = await sim_session(simulator, s["avatarSessionId"])
    assert seen["stoppedReason"] == "USER_CLOSED" and seen["body"]["avatar_persona"]["context_id"] == "ctx-1"
    assert seen["body"]["interactivity_type"] == "PUSH_TO_TALK" and seen["audioBytes"] == 16000


async def test_a_key_holding_simulator_as_the_base_url_hands_out_its_stand_in_room(tmp_path, simulator):
    """A deployer rehearsing with `talkgate simulator --liveavatar-api-key` as LIVEAVATAR_BASE_URL
    (talkgate not in simulator mode): the simulator's start reply marks its room as the stand-in, so
    the page is sent there (LiveKit's client was, and the simulator refused it), and the page's
    Content-Security-Policy lets it connect."""
    gate = start_gate(
        tmp_path,
        simulator,
        simulator_mode=False,
        liveavatar_api_key=SecretStr(KEY),
        liveavatar_base_url=simulator.http_url,
        liveavatar_avatar_id=AVATAR,
    )
    try:
        async with httpx.AsyncClient(base_url=gate.url) as client:
            s = (await client.post("/api/liveavatar/session", headers=gate.headers(), json={})).json()
            csp = (await client.get("/")).headers["content-security-policy"]
            async with websockets.connect(f"{s['livekitUrl']}?token={s['livekitToken']}") as room:
                await room.send(DataPacket("agent-control", Command.START_PTT).serialize())
                assert DataPacket.parse(await room.recv()).event_type == "user.push_to_talk_started"
            await client.post(f"/api/liveavatar/session/{s['conversationId']}/stop", headers=gate.headers())
    finally:
        gate.server.stop()
    assert s["transport"] == "simulator" and s["livekitUrl"].endswith("/_liveavatar/room")
    room_origin = s["livekitUrl"].rsplit("/_liveavatar", 1)[0]
    connect_src = next(d for d in csp.split(";") if d.strip().startswith("connect-src"))
    assert room_origin in connect_src.split()


async def test_bad_requests_get_specific_errors(avatar_gate):
    gate = avatar_gate
    async with httpx.AsyncClient(base_url=gate.url) as client:
        h = gate.headers()
        assert (
            await client.post("/api/liveavatar/session", headers=h, json={"avatarId": "../x"})
        ).status_code == 422
        assert (await client.post("/api/liveavatar/session/conv_x/keep-alive", headers=h)).json()["error"][
            "code"
        ] == "bad_request"
        assert (
            await client.post("/api/liveavatar/session/avatar_nope/keep-alive", headers=h)
        ).status_code == 404
        # An ElevenLabs call the app happened to name avatar_…: not an avatar session.
        named = await client.post(
            "/api/elevenlabs-signed-url", headers=h, json={"conversationId": "avatar_el"}
        )
        assert named.status_code == 200, named.text
        for path in ("keep-alive", "stop"):
            r = await client.post(f"/api/liveavatar/session/avatar_el/{path}", headers=h, json={})
            assert r.status_code == 400 and r.json()["error"]["message"] == "not an avatar session id"
        s = (await client.post("/api/liveavatar/session", headers=h, json={})).json()
        cid = s["conversationId"]
        bad_reason = await client.post(
            f"/api/liveavatar/session/{cid}/stop", headers=h, json={"reason": "BORED"}
        )
        assert bad_reason.status_code == 400 and "unknown reason" in bad_reason.json()["error"]["message"]
        bad_role = await client.post(
            f"/api/calls/{cid}/transcript", headers=h, json={"role": "x", "text": "y"}
        )
        assert bad_role.status_code == 422
        await client.post(f"/api/liveavatar/session/{cid}/stop", headers=h, json={"reason": "IDLE_TIMEOUT"})
        call = (await client.get(f"/api/calls/{cid}", headers=h)).json()
    assert call["endReason"] == "idle_timeout"


async def test_the_pages_upload_of_both_sides_is_the_avatar_calls_recording(avatar_gate):
    """The page records both sides of an avatar call (the audio flows in the room, not through
    talkgate) and uploads them through the chunks route; stopping the session makes them the call's
    recording, served as the call log describes it. A call without any upload says why it has none."""
    gate = avatar_gate
    first, second = noise(600, 1), noise(400, 2)
    async with httpx.AsyncClient(base_url=gate.url) as client:
        h = gate.headers()
        cid = (await client.post("/api/liveavatar/session", headers=h, json={})).json()["conversationId"]
        for part in (first, second):
            r = await client.post(f"/api/calls/{cid}/chunks", headers=h, content=part)
            assert r.status_code == 200, r.text
        during = (await client.get(f"/api/calls/{cid}", headers=h)).json()
        other = await client.post(f"/api/calls/{cid}/chunks", headers=gate.headers("bob"), content=first)
        stopped = await client.post(f"/api/liveavatar/session/{cid}/stop", headers=h, json={})
        served = await client.get(f"/api/calls/{cid}/audio", headers=h)
        late = await client.post(f"/api/calls/{cid}/chunks", headers=h, content=first)
        silent = (await client.post("/api/liveavatar/session", headers=h, json={})).json()["conversationId"]
        await client.post(f"/api/liveavatar/session/{silent}/stop", headers=h, json={})
        none = (await client.get(f"/api/calls/{silent}", headers=h)).json()
        none_audio = await client.get(f"/api/calls/{silent}/audio", headers=h)
    assert during["recording"] == "in_progress" and during["noRecordingReason"] is None
    assert other.status_code == 404
    call = stopped.json()
    assert call["status"] == "ended" and call["recording"] == "ready"
    assert call["audioSource"] == "client_chunks"
    assert served.status_code == 200 and wav_pcm(served.content) == first + second
    assert call["audioBytes"] == len(served.content) and call["noRecordingReason"] is None
    assert late.status_code == 409 and late.json()["error"]["code"] == "call_ended"
    assert none["recording"] == "none" and none["audioUrl"] is None and none["audioSource"] is None
    assert "no audio came from the page" in none["noRecordingReason"]
    assert none_audio.status_code == 404


async def test_a_closing_pages_stop_waits_for_its_last_upload_which_may_arrive_after_it(
    avatar_gate, simulator, monkeypatch
):
    """A tab that closes sends its last recording upload and the stop together (keepalive
    requests); the stop may arrive first. Told how many bytes the page sent, it stores the
    recording only once they are all in: nothing of the call's end is lost. Bounded: a stop told of
    bytes that never come stores what there is once the grace has passed."""
    from talkgate.calls import avatar as avatar_calls

    gate = avatar_gate
    first, last = noise(600, 1), noise(400, 2)
    async with httpx.AsyncClient(base_url=gate.url, timeout=TIMEOUT) as client:
        h = gate.headers()
        started = (await client.post("/api/liveavatar/session", headers=h, json={})).json()
        cid = started["conversationId"]
        session = f"{simulator.http_url}/_simulator/liveavatar/sessions/{started['avatarSessionId']}"
        assert (await client.post(f"/api/calls/{cid}/chunks", headers=h, content=first)).status_code == 200
        stop = asyncio.ensure_future(
            client.post(
                f"/api/liveavatar/session/{cid}/stop",
                headers=h,
                json={"reason": "USER_DISCONNECTED", "uploadedBytes": len(first) + len(last)},
            )
        )
        # The stop has stopped the provider's session (its step before storing the recording).
        async with asyncio.timeout(TIMEOUT):
            while (await client.get(session)).json().get("stoppedReason") is None:  # noqa: ASYNC110 - another process
                await asyncio.sleep(0.01)
        late = await client.post(f"/api/calls/{cid}/chunks", headers=h, content=last)  # after the stop left
        stopped = await stop
        served = await client.get(f"/api/calls/{cid}/audio", headers=h)

        monkeypatch.setattr(avatar_calls, "UPLOAD_GRACE_S", 0.3)
        short = (await client.post("/api/liveavatar/session", headers=h, json={})).json()["conversationId"]
        assert (await client.post(f"/api/calls/{short}/chunks", headers=h, content=first)).status_code == 200
        never = await client.post(
            f"/api/liveavatar/session/{short}/stop", headers=h, json={"uploadedBytes": 10 * len(first)}
        )
        kept = await client.get(f"/api/calls/{short}/audio", headers=h)
    assert late.status_code == 200, late.text
    call = stopped.json()
    assert (
        call["status"] == "ended"
        and call["endReason"] == "user_disconnected"
        and call["recording"] == "ready"
    )
    assert wav_pcm(served.content) == first + last and call["audioBytes"] == len(served.content)
    assert never.status_code == 200 and never.json()["recording"] == "ready"
    assert wav_pcm(kept.content) == first


async def test_without_a_key_avatar_sessions_are_refused_clearly(gate):
    async with httpx.AsyncClient(base_url=gate.url) as client:
        r = await client.post("/api/liveavatar/session", headers=gate.headers(), json={})
        config = (await client.get("/api/config")).json()
    assert r.status_code == 404 and r.json()["error"] == {
        "code": "not_configured",
        "message": "LiveAvatar is not configured on this server (LIVEAVATAR_API_KEY)",
    }
    assert config["avatar"] is False


@pytest.mark.skipif(shutil.which("node") is None, reason="Node.js runs the page's module")
def test_the_pages_recording_mixes_both_sides_on_one_clock():
    """The recording's timeline (the client package's recording.js, as the page loads it): each side
    where it was heard, mixed and clipped; audio later cut (a flushed player) is gone; what is taken is
    never given again; a late chunk is dropped."""
    script = (
        f"import {{ Timeline, resample }} from '{STATIC / 'client' / 'recording.js'}';"
        "const t = new Timeline(); const f = (n, v) => new Float32Array(n).fill(v);"
        "t.place('user', f(4, 0.5), 2); t.place('agent', f(4, 0.25), 4);"
        "t.place('agent', f(2, 0.75), 6); const first = Array.from(t.take(5));"
        "t.place('user', f(3, 0.5), 1); t.place('user', f(2, 0.5), 6); t.cut('agent', 7);"
        "const rest = Array.from(t.take(10)); t.place('agent', f(1, 1), 40000);"
        "const far = t.take(40001).length;"
        "console.log(JSON.stringify({first, rest, far, base: t.base, up: resample(f(8, 0.5), 8000).length}));"
    )
    result = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    got = json.loads(result.stdout)
    half, three_quarters = 16383, 24575
    assert got["first"] == [0, 0, half, half, three_quarters]
    # 0.5 + 0.75 is clipped; the agent's audio from sample 7 on was cut; the late user chunk dropped.
    assert got["rest"] == [three_quarters, 32767, half, 0, 0]
    assert got["far"] == 40001 - 10 and got["base"] == 40001 and got["up"] == 16


async def test_a_call_that_never_connected_is_failed_without_a_recording_of_silence(avatar_gate, simulator):
    """The page's mix of a room that never connected is pure silence: not a recording, and the
    call is not a user's hang-up. Silence alone is not stored on a call that did connect either."""
    gate = avatar_gate
    silence = bytes(16000 * 2)  # a second of zero samples, as the page uploads for a room never joined
    async with httpx.AsyncClient(base_url=gate.url) as client:
        h = gate.headers()
        started = (await client.post("/api/liveavatar/session", headers=h, json={})).json()
        cid = started["conversationId"]
        assert (await client.post(f"/api/calls/{cid}/chunks", headers=h, content=silence)).status_code == 200
        stopped = await client.post(
            f"/api/liveavatar/session/{cid}/stop", headers=h, json={"reason": "NEVER_CONNECTED"}
        )
        audio = await client.get(f"/api/calls/{cid}/audio", headers=h)
        quiet = (await client.post("/api/liveavatar/session", headers=h, json={})).json()["conversationId"]
        await client.post(f"/api/calls/{quiet}/chunks", headers=h, content=silence)
        closed = (await client.post(f"/api/liveavatar/session/{quiet}/stop", headers=h, json={})).json()
    assert stopped.status_code == 200, stopped.text
    call = stopped.json()
    assert (call["status"], call["endReason"], call["recording"]) == ("failed", "never_connected", "none")
    assert "never connected" in call["noRecordingReason"] and call["audioUrl"] is None
    assert audio.status_code == 404
    assert (await sim_session(simulator, started["avatarSessionId"]))["stoppedReason"] == "USER_DISCONNECTED"
    assert (closed["status"], closed["endReason"], closed["recording"]) == ("ended", "user_closed", "none")
    assert "no audio came from the page" in closed["noRecordingReason"]
