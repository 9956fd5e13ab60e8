"""`talkgate serve` as a real process: SIGKILL mid-recording and restart; the media socket on its own
port; two processes sharing one deployment (PostgreSQL, a bucket, Redis); `--workers`."""

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
import websockets
from pydantic import SecretStr

from talkgate.auth import TokenVerifier
from talkgate.serving import bind
from talkgate.settings import Settings
from talkgate.web.media import media_url
from tests.support.gate import connect_to
from tests.support.recordings import direct_turn, expected_mix, find, noise, wav_pcm
from tests.support.servers import AGENT_ID, S3_CREDENTIALS, SIM_KEY
from tests.support.timing import TIMEOUT

pytestmark = pytest.mark.realtime

JWT_SECRET = "crash-test-jwt-secret-0123456789abcdefghij"


def free_port() -> int:
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    return port


class Server:
    def __init__(self, tmp_path, simulator, name: str = "server") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "ELEVENLABS_API_KEY": SIM_KEY,
            "ELEVENLABS_BASE_URL": simulator.http_url,
            "ELEVENLABS_AGENT_ID": AGENT_ID,
            "TALKGATE_DATA_DIR": str(tmp_path / name / "data"),
            "TALKGATE_PORT": str(self.port),
            "TALKGATE_PUBLIC_URL": self.url,
            "TALKGATE_JWT_SECRET": JWT_SECRET,
            "TALKGATE_MEDIA_STREAMING": "true",
        }
        self.log = tmp_path / f"{name}.log"
        self.args: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "talkgate.cli", "serve", *self.args],
                env=self.env,
                stdout=out,
                stderr=out,
            )

    def token(self, user: str) -> str:
        settings = Settings(_env_file=None, jwt_secret=SecretStr(JWT_SECRET))  # type: ignore[call-arg]
        return TokenVerifier(settings).issue(user)

    async def start(self) -> None:
        self.proc = self.spawn()
        async with httpx.AsyncClient() as client, asyncio.timeout(TIMEOUT * 3):
            while True:
                assert self.proc.poll() is None, self.log.read_text()
                try:
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)  # readiness poll of a process we just started

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=TIMEOUT)


@pytest.fixture
def server_factory(tmp_path, simulator):
    servers: list[Server] = []

    def make(name: str = "server") -> Server:
        servers.append(Server(tmp_path, simulator, name))
        return servers[-1]

    yield make
    for s in servers:
        s.stop()


async def test_sigkill_mid_recording_then_restart_gives_a_valid_wav_up_to_the_kill(server_factory):
    server = server_factory()
    await server.start()
    settings = Settings(_env_file=None, jwt_secret=SecretStr(JWT_SECRET))  # type: ignore[call-arg]
    headers = {"Authorization": f"Bearer {TokenVerifier(settings).issue('alice')}"}
    caller = noise(5000, seed=31)
    step = 3200
    async with httpx.AsyncClient(base_url=server.url) as client:
        r = await client.post(
            "/api/elevenlabs-signed-url",
            headers=headers,
            json={"voice": "default", "conversationId": "conv_crash"},
        )
        assert r.json()["mediaStreamingEnabled"] is True
        sent = 0
        async with websockets.connect(r.json()["signedUrl"]) as ws:
            await ws.recv()  # metadata
            await ws.send(json.dumps({"type": "user_message_begin"}))
            for _ in range(25):  # 2.5 s at a microphone's pace, then the server dies mid-sentence
                await asyncio.sleep(0.1)
                await ws.send(
                    json.dumps({"user_audio_chunk": base64.b64encode(caller[sent : sent + step]).decode()})
                )
                sent += step
            server.kill()
            sent_at_kill = sent

    restarted = server_factory()
    restarted.port, restarted.url, restarted.env = server.port, server.url, server.env
    await restarted.start()  # start-up repairs the spool before serving
    async with httpx.AsyncClient(base_url=restarted.url) as client:
        call = (await client.get("/api/calls/conv_crash", headers=headers)).json()
        assert (call["status"], call["audioSource"]) == ("recovered", "media_stream")
        blob = (await client.get(call["audioUrl"], headers=headers)).content
    pcm = wav_pcm(blob)  # a valid WAV: the header's sizes match the file
    start = find(pcm, caller[:64])
    assert 0 <= start < 16_000
    voiced = np.frombuffer(pcm[start:], dtype="<i2")
    kept = 2 * int(np.flatnonzero(voiced)[-1] + 1)  # the noise has no zero samples; silence follows it
    assert pcm[start : start + kept] == caller[:kept]
    assert kept >= sent_at_kill - 32_000, f"lost {(sent_at_kill - kept) / 32:.0f} ms before the kill"


async def test_the_media_socket_can_be_served_on_a_port_of_its_own(server_factory):
    server = server_factory()
    media_port = free_port()
    server.env["TALKGATE_MEDIA_PORT"] = str(media_port)
    await server.start()
    settings = Settings(_env_file=None, jwt_secret=SecretStr(JWT_SECRET), public_url=server.url)  # type: ignore[call-arg]
    headers = {"Authorization": f"Bearer {TokenVerifier(settings).issue('alice')}"}
    caller = noise(200, seed=32)
    async with httpx.AsyncClient(base_url=server.url) as client:
        # The conversation is created here; the provider's media socket goes to the media port
        # (where a reverse proxy would route /ws/elevenlabs-media).
        r = await client.post(
            "/api/elevenlabs-signed-url", headers=headers, json={"conversationId": "conv_port"}
        )
        assert r.status_code == 200
        url = media_url(settings, "conv_port").replace(f":{server.port}/", f":{media_port}/")
        async with websockets.connect(url) as ws:
            b64 = base64.b64encode(caller).decode()
            await ws.send(json.dumps({"type": "audio_input", "conversation_id": "conv_port", "audio": b64}))
            await ws.send(json.dumps({"type": "call_end", "conversation_id": "conv_port"}))
            await ws.wait_closed()
        with pytest.raises(websockets.InvalidStatus):  # the media port checks signatures too
            async with websockets.connect(url.split("?")[0] + "?conversation_id=conv_port"):
                pass
        call = (await client.post("/api/calls/conv_port/end", headers=headers)).json()
        assert call["audioSource"] == "media_stream"
        pcm = wav_pcm((await client.get(call["audioUrl"], headers=headers)).content)
    assert pcm == caller


@pytest.mark.postgres
@pytest.mark.s3
async def test_two_processes_share_a_deployment_media_socket_on_one_call_end_on_the_other(
    server_factory, postgres_url, s3_endpoint, s3_bucket
):
    shared = {
        **S3_CREDENTIALS,
        "TALKGATE_DATABASE_URL": postgres_url,
        "TALKGATE_STORAGE_URL": f"s3://{s3_bucket}/shared",
        "TALKGATE_S3_ENDPOINT_URL": s3_endpoint,
    }
    a, b = server_factory("a"), server_factory("b")
    for server in (a, b):
        server.env.update(shared)
    await a.start()
    await b.start()  # after a: the schema is migrated once
    settings = Settings(_env_file=None, jwt_secret=SecretStr(JWT_SECRET))  # type: ignore[call-arg]
    headers = {"Authorization": f"Bearer {TokenVerifier(settings).issue('alice')}"}
    caller = noise(800, seed=33)
    async with httpx.AsyncClient() as client:
        r = await client.post(
            f"{a.url}/api/elevenlabs-signed-url",
            headers=headers,
            json={"voice": "default", "conversationId": "conv_two"},
        )
        assert r.status_code == 200, r.text
        signed = r.json()["signedUrl"]
        _, agent = await direct_turn(signed, caller)
        # Sent as soon as the turn is over, while a may still be writing: b waits for a's recording
        # through the database, then finds it in the bucket.
        ended = await client.post(f"{b.url}/api/calls/conv_two/end", headers=headers, timeout=TIMEOUT)
        assert ended.status_code == 200, ended.text
        end_result = ended.json()
        assert end_result["audioSource"] == "media_stream" and end_result["status"] == "ended"
        assert end_result["audioUrl"] == f"{a.url}/api/calls/conv_two/audio"
        from_b = await client.get(f"{b.url}/api/calls/conv_two/audio", headers=headers)
        from_a = await client.get(f"{a.url}/api/calls/conv_two/audio", headers=headers)
        listed_on_a = (await client.get(f"{a.url}/api/calls", headers=headers)).json()
    assert from_b.status_code == 200 and from_b.content == from_a.content
    assert [c["conversationId"] for c in listed_on_a["calls"]] == ["conv_two"]
    pcm = wav_pcm(from_b.content)
    at_caller = find(pcm, caller[:64])
    at_agent = find(pcm, agent[:64], at_caller + len(caller))
    assert at_caller >= 0 and at_agent >= at_caller + len(caller)
    assert pcm == expected_mix(len(pcm), [(at_caller, caller), (at_agent, agent)])


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_processes_on_redis_tell_the_user_on_one_when_a_recording_lands_on_the_other(
    server_factory, postgres_url, redis_url, redis_channel
):
    a, b = server_factory("a"), server_factory("b")
    for server in (a, b):
        server.env.update(
            {
                "TALKGATE_DATABASE_URL": postgres_url,
                "TALKGATE_REDIS_URL": redis_url,
                "TALKGATE_REDIS_CHANNEL": redis_channel,
            }
        )
    await a.start()
    await b.start()
    alice_on_a = await connect_to(a.url, a.token("alice"))
    bob_on_a = await connect_to(a.url, a.token("bob"))
    try:
        async with httpx.AsyncClient(base_url=b.url) as client:
            for user, cid, seed in (("alice", "conv_redis_a", 41), ("bob", "conv_redis_b", 42)):
                headers = {"Authorization": f"Bearer {b.token(user)}"}
                r = await client.post(
                    "/api/elevenlabs-signed-url",
                    headers=headers,
                    json={"voice": "default", "conversationId": cid},
                )
                assert r.status_code == 200, r.text
                await direct_turn(r.json()["signedUrl"], noise(300, seed=seed), paced=False)
                ended = await client.post(f"/api/calls/{cid}/end", headers=headers, timeout=TIMEOUT)
                assert ended.status_code == 200 and ended.json()["audioSource"] == "media_stream"

        # b stored both recordings; a's sockets hear of them through Redis, each user of their own.
        # (Under load a call end may come before the media socket's recording and attach the
        # provider's copy first: then a second notice follows for the better recording.)
        def media(p):
            return p["audioSource"] == "media_stream"

        (bobs,) = await bob_on_a.wait_for("recording_ready", pred=media)
        (alices,) = await alice_on_a.wait_for("recording_ready", pred=media)
    finally:
        await alice_on_a.sio.disconnect()
        await bob_on_a.sio.disconnect()
    assert alices["conversationId"] == "conv_redis_a" and bobs["conversationId"] == "conv_redis_b"
    assert alices["audioUrl"] == f"{b.url}/api/calls/conv_redis_a/audio"
    assert alices["audioSource"] == "media_stream" and alices["bytes"] > 44
    # Redis keeps one publisher's order: every notice b published came no later than the last one
    # received above, so had one of alice's reached bob's socket (or his hers), it would be there.
    assert {(e, p["conversationId"]) for e, p in bob_on_a.events} == {("recording_ready", "conv_redis_b")}
    assert {(e, p["conversationId"]) for e, p in alice_on_a.events} == {("recording_ready", "conv_redis_a")}


def worker_pids(log: str) -> dict[int, list[int]]:
    """Every pid each worker index was started with, from the supervisor's log lines."""
    pids: dict[int, list[int]] = {}
    for index, pid in re.findall(r"worker (\d+) started \(pid (\d+)\)", log):
        pids.setdefault(int(index), []).append(int(pid))
    return pids


async def log_shows(server: Server, pattern: str, count: int = 1) -> str:
    """Waits until the server's log has ``count`` lines matching ``pattern``; returns the log."""
    async with asyncio.timeout(TIMEOUT * 3):
        while True:
            log = server.log.read_text()
            if len(re.findall(pattern, log)) >= count:
                return log
            await asyncio.sleep(0.05)  # readiness poll of a log another process writes


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def relay_turn(url: str, token: str, pcm: bytes) -> bytes:
    """One push-to-talk conversation through talkgate; returns the agent audio (the echo)."""
    app = await connect_to(url, token)
    try:
        assert (await app.call("conversation_start", {"voice": "default"}))["ok"]
        await app.call("user-audio-start")
        assert (await app.call("send_audio", {"audio": base64.b64encode(pcm).decode()}))["ok"]
        await app.call("user-audio-end")
        while sum(len(base64.b64decode(p["audio"])) for p in app.of("agent_audio")) < len(pcm):
            await app.wait_for("agent_audio", len(app.of("agent_audio")) + 1)
        await app.call("conversation_end")
        return b"".join(base64.b64decode(p["audio"]) for p in app.of("agent_audio"))
    finally:
        await app.sio.disconnect()


@pytest.mark.redis
async def test_workers_share_one_port_a_dead_worker_is_replaced_and_sigterm_stops_all(
    server_factory, redis_url, redis_channel
):
    server = server_factory("workers")
    server.args = ["--workers", "2"]
    server.env.update({"TALKGATE_REDIS_URL": redis_url, "TALKGATE_REDIS_CHANNEL": redis_channel})
    await server.start()
    pids = worker_pids(await log_shows(server, r"\[worker \d\] talkgate: talkgate listening", 2))
    assert all(alive(p[0]) for p in pids.values())

    clips = [noise(200, seed=50 + i) for i in range(6)]
    echoes = await asyncio.gather(
        *(relay_turn(server.url, server.token(f"u{i}"), c) for i, c in enumerate(clips))
    )
    assert [e[: len(c)] for e, c in zip(echoes, clips, strict=True)] == clips

    # Whichever worker answers /metrics, it counts the conversations of both.
    async with httpx.AsyncClient(base_url=server.url) as client:
        for _ in range(4):
            scraped = (await client.get("/metrics")).text
            assert 'talkgate_conversations_total{kind="relay"} 6.0' in scraped
            assert 'talkgate_live_conversations{kind="relay"} 0.0' in scraped

    os.kill(pids[0][0], signal.SIGKILL)
    await log_shows(server, r"\[worker 0\] talkgate: talkgate listening", 2)  # its replacement
    log = server.log.read_text()
    assert f"worker 0 (pid {pids[0][0]}) exited with -9" in log
    replacement = worker_pids(log)[0][1]
    assert alive(replacement) and alive(pids[1][0])
    clip = noise(200, seed=60)
    assert (await relay_turn(server.url, server.token("after"), clip))[: len(clip)] == clip

    assert server.proc is not None
    server.proc.terminate()
    assert server.proc.wait(timeout=TIMEOUT * 3) == 0
    assert not alive(replacement) and not alive(pids[1][0])
    assert "Traceback" not in server.log.read_text()


async def test_a_full_run_logs_json_lines_naming_their_conversation_and_no_credential(server_factory):
    server = server_factory("json")
    server.env.update({"TALKGATE_LOG_FORMAT": "json", "TALKGATE_LOG_LEVEL": "DEBUG"})
    await server.start()
    token = server.token("alice")
    headers = {"Authorization": f"Bearer {token}"}
    credentials = [SIM_KEY, JWT_SECRET, token]
    async with httpx.AsyncClient(base_url=server.url) as client:
        r = await client.post(
            "/api/elevenlabs-signed-url", headers=headers, json={"conversationId": "conv_json"}
        )
        signed = r.json()["signedUrl"]
        credentials.append(parse_qs(urlsplit(signed).query)["conversation_signature"][0])
        await direct_turn(signed, noise(300, seed=70), paced=False)
        assert (await client.post("/api/calls/conv_json/end", headers=headers)).status_code == 200
        link = (await client.get("/api/calls/conv_json/audio-link", headers=headers)).json()["url"]
        credentials.append(parse_qs(urlsplit(link).query)["signature"][0])
        assert (await client.get(link, headers={"Range": "bytes=0-99"})).status_code == 206
        scraped = await client.get("/metrics")
        assert scraped.status_code == 200
        # The serving process settled its heap before serving (talkgate/fastpaths/gc_pacing.py): that full
        # collection is observed, and so is every collection since.
        full = re.search(r'talkgate_gc_pause_seconds_count\{generation="2"\} (\S+)', scraped.text)
        assert full is not None and float(full.group(1)) >= 1
    app = await connect_to(server.url, token)
    try:
        relayed = (await app.call("conversation_start", {"voice": "default"}))["conversationId"]
        await app.call("user-audio-start")
        await app.call("send_audio", {"audio": base64.b64encode(noise(200, seed=71)).decode()})
        await app.call("user-audio-end")
        await app.wait_for("agent_audio")
        await app.call("conversation_end")
        await app.wait_for("conversation_ended")
    finally:
        await app.sio.disconnect()
    server.stop()

    text = server.log.read_text()
    entries = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    assert len(entries) > 30
    for secret in credentials:
        assert secret not in text, [e["message"] for e in entries if secret in json.dumps(e)][:3]
    assert any("signature=[redacted]" in e["message"] for e in entries)  # the access log's line
    for cid in ("conv_json", relayed):
        about = [e for e in entries if cid in e["message"] and e["logger"].startswith("talkgate")]
        assert len(about) >= 2 and all(e["conversation_id"] == cid for e in about), about
