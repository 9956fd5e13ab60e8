"""Faults injected at talkgate's edges, each with its defined behaviour: a clear error, nothing
already received lost, and no task, relay, recording or file handle left behind.

Provider unreachable, refusing the key, closing mid-turn or timing out are in test_relay_faults.py;
a disk failing inside the recorder is in tests/recording."""

from __future__ import annotations

import asyncio
import base64
import os
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from talkgate.calls import call_log, repair
from talkgate.errors import StorageError
from talkgate.persistence import retry
from talkgate.protocol.audio import wav_header
from tests.support.gate import Gate, connect, paced_turn, start_gate
from tests.support.recordings import expected_mix, find, noise, wav_pcm
from tests.support.servers import start_simulator
from tests.support.timing import wait_until


def open_files_under(path: Path) -> list[str]:
    """This process's open file descriptors that point under ``path``."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(path.resolve())):
            found.append(target)
    return found


async def assert_nothing_left(gate: Gate) -> None:
    rt = gate.app.runtime
    await wait_until(lambda: not rt.relays and not rt.recordings.live and not rt.tasks)
    # The database's own connection stays open; no recording's file does. (A file response may
    # close its file just after the client has read the last byte: hence the wait.)
    recordings = (gate.settings.spool_dir, gate.settings.data_dir / "recordings")
    await wait_until(lambda: not any(open_files_under(path) for path in recordings))


class Outage:
    """Makes repository writes fail as if the database were unreachable: the next ``times`` calls,
    or every call until ``restore()``."""

    def __init__(self, gate: Gate, *names: str, times: int | None = None) -> None:
        self.left = times
        self.down = True
        self.failures = 0
        repo = gate.app.runtime.repo
        for name in names:
            setattr(repo, name, self._wrap(getattr(repo, name)))

    def _wrap(self, method):
        async def failing(*args, **kwargs):
            if self.down and (self.left is None or self.left > 0):
                if self.left is not None:
                    self.left -= 1
                self.failures += 1
                raise OperationalError("UPDATE call_logs", {}, ConnectionRefusedError("database is down"))
            return await method(*args, **kwargs)

        return failing

    def restore(self) -> None:
        self.down = False


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(retry, "SHORT", (0.01, 0.02, 0.04))
    monkeypatch.setattr(call_log, "LATER_DELAYS", (0.05,) * 400)


@pytest.mark.realtime
async def test_a_slow_provider_is_a_timeout_error_within_the_set_time(tmp_path):
    slow = start_simulator(response_delay_s=5.0)
    gate = start_gate(tmp_path, slow, provider_timeout_s=0.5)
    app = await connect(gate)
    try:
        began = time.monotonic()
        ack = await app.call("conversation_start")
        elapsed = time.monotonic() - began
        assert ack["ok"] is False and ack["error"]["code"] == "provider_timeout"
        assert "timed out" in ack["error"]["message"]
        assert elapsed < 0.5 + 1.0
        (ended,) = await app.wait_for("conversation_ended")
        assert ended["reason"] == "error"
        assert (await app.call("user_activity_signal"))["error"]["code"] == "no_conversation"  # socket lives
        await app.sio.disconnect()
        await assert_nothing_left(gate)
    finally:
        gate.server.stop()
        slow.stop()


@pytest.mark.realtime
async def test_a_brief_database_outage_at_call_end_loses_nothing(gate, quick_retries):
    app = await connect(gate)
    clip = noise(300, seed=90)
    try:
        cid = (await app.call("conversation_start"))["conversationId"]
        await paced_turn(app, clip, 1)
        outage = Outage(gate, "close_conversation", "set_call_audio", times=4)
        await app.call("conversation_end")
        (ended,) = await app.wait_for("conversation_ended")
    finally:
        await app.sio.disconnect()
    assert outage.failures == 4 and not app.of("conversation_error")
    assert ended["audioUrl"] == f"{gate.url}/api/calls/{cid}/audio"
    async with httpx.AsyncClient(base_url=gate.url) as client:
        call = (await client.get(f"/api/calls/{cid}", headers=gate.headers())).json()
        pcm = wav_pcm((await client.get(ended["audioUrl"], headers=gate.headers())).content)
    assert call["status"] == "ended" and [t["role"] for t in call["transcript"]] == ["user", "agent"]
    assert call["turns"][0]["turn"] == 1 and call["audioSource"] == "relay"
    at = find(pcm, clip[:64])
    assert at >= 0 and pcm[at : at + len(clip)] == clip
    await assert_nothing_left(gate)


async def test_a_start_while_the_database_is_away_is_refused_as_database_unavailable_then_works(
    gate, quick_retries
):
    app = await connect(gate)
    try:
        outage = Outage(gate, "open_conversation")
        refused = await app.call("conversation_start")
        assert outage.failures == 4  # the first try and the short retries
        outage.restore()
        started = await app.call("conversation_start")  # the same socket, once it is back
        await app.call("conversation_end")
        await app.wait_for("conversation_ended")
    finally:
        await app.sio.disconnect()
    assert refused["ok"] is False and refused["error"]["code"] == "database_unavailable"
    assert "database is unavailable" in refused["error"]["message"]
    assert [p["code"] for p in app.of("conversation_error")] == ["database_unavailable"]
    assert started["ok"] is True
    await assert_nothing_left(gate)


@pytest.mark.realtime
async def test_a_long_database_outage_is_reported_and_the_call_log_saved_when_it_returns(gate, quick_retries):
    app = await connect(gate)
    clip = noise(300, seed=91)
    try:
        cid = (await app.call("conversation_start"))["conversationId"]
        await paced_turn(app, clip, 1)
        outage = Outage(gate, "close_conversation", "set_call_audio")
        await app.call("conversation_end")
        (error,) = await app.wait_for("conversation_error")
        (ended,) = await app.wait_for("conversation_ended")
    finally:
        await app.sio.disconnect()
    assert error["code"] == "database_unavailable" and error["fatal"] is False
    assert "keeps trying" in error["message"]
    assert ended["reason"] == "client"
    async with httpx.AsyncClient(base_url=gate.url) as client:
        during = (await client.get(f"/api/calls/{cid}", headers=gate.headers())).json()
        assert during["status"] == "active" and not during["audioUrl"]  # not saved, not lost
        outage.restore()
        rt = gate.app.runtime
        await wait_until(lambda: not rt.tasks)  # the background retry saved it and ended
        call = (await client.get(f"/api/calls/{cid}", headers=gate.headers())).json()
        pcm = wav_pcm((await client.get(call["audioUrl"], headers=gate.headers())).content)
    assert call["status"] == "ended" and [t["role"] for t in call["transcript"]] == ["user", "agent"]
    assert call["audioSource"] == "relay"
    at = find(pcm, clip[:64])
    assert at >= 0 and pcm[at : at + len(clip)] == clip
    await assert_nothing_left(gate)


async def test_http_routes_answer_503_while_the_database_is_away(gate):
    Outage(gate, "list_calls")
    async with httpx.AsyncClient(base_url=gate.url) as client:
        r = await client.get("/api/calls", headers=gate.headers())
    assert r.status_code == 503
    assert r.json()["error"] == {
        "code": "database_unavailable",
        "message": "the database is unavailable; try again shortly",
    }


@pytest.mark.realtime
async def test_a_disk_failing_mid_call_is_reported_and_what_was_written_is_kept(gate):
    app = await connect(gate)
    first, second = noise(400, seed=92), noise(400, seed=93)
    try:
        cid = (await app.call("conversation_start"))["conversationId"]
        await paced_turn(app, first, 1)
        live = gate.app.runtime.recordings.live[cid]
        await wait_until(lambda: os.stat(live.recorder.path).st_size >= 44 + 2 * len(first))

        def disk_full(pcm: bytes) -> None:
            raise OSError(28, "No space left on device")

        live.recorder._writer.write = disk_full
        await paced_turn(app, second, 2)  # the conversation goes on
        (error,) = await app.wait_for("conversation_error")
        await app.call("conversation_end")
        (ended,) = await app.wait_for("conversation_ended")
    finally:
        await app.sio.disconnect()
    assert error["code"] == "storage_error" and error["fatal"] is False
    assert "No space left on device" in error["message"] and "kept" in error["message"]
    async with httpx.AsyncClient() as client:
        pcm = wav_pcm((await client.get(ended["audioUrl"], headers=gate.headers())).content)
    # The first turn and its echo reached the disk before it failed: both are in the WAV, exactly.
    at_caller = find(pcm, first[:64])
    at_agent = find(pcm, first[:64], at_caller + len(first))
    assert at_caller >= 0 and at_agent >= at_caller + len(first)
    end = at_agent + len(first)
    assert pcm[:end] == expected_mix(end, [(at_caller, first), (at_agent, first)])
    await assert_nothing_left(gate)


@pytest.mark.realtime
async def test_storage_failing_at_the_end_keeps_the_recording_for_the_next_start(gate):
    rt = gate.app.runtime
    real_put = rt.storage.put_file
    failing = True

    async def put_file(key: str, source: Path) -> int:
        if failing:
            raise StorageError("the bucket is unreachable")
        return await real_put(key, source)

    rt.storage.put_file = put_file
    app = await connect(gate)
    clip = noise(300, seed=94)
    try:
        cid = (await app.call("conversation_start"))["conversationId"]
        await paced_turn(app, clip, 1)
        await app.call("conversation_end")
        (ended,) = await app.wait_for("conversation_ended")
    finally:
        await app.sio.disconnect()
    assert ended["audioUrl"] is None
    spooled = list(gate.settings.spool_dir.iterdir())
    assert len(spooled) == 1 and spooled[0].name.endswith(".relay.wav.part")
    failing = False
    assert await rt.recordings.recover() == [cid]  # what the next start-up does
    async with httpx.AsyncClient(base_url=gate.url) as client:
        call = (await client.get(f"/api/calls/{cid}", headers=gate.headers())).json()
        pcm = wav_pcm((await client.get(call["audioUrl"], headers=gate.headers())).content)
    assert call["audioSource"] == "relay"
    at = find(pcm, clip[:64])
    assert at >= 0 and pcm[at : at + len(clip)] == clip
    assert list(gate.settings.spool_dir.iterdir()) == []
    await assert_nothing_left(gate)


@pytest.fixture
def quick_store_retry(monkeypatch):
    monkeypatch.setattr(repair, "RETRY_S", 0.1)


@pytest.mark.realtime
async def test_storage_refusing_at_the_end_the_recording_is_stored_once_it_is_back_without_a_restart(
    quick_store_retry, gate
):
    rt = gate.app.runtime
    real_put = rt.storage.put_file
    refused = 0

    async def put_file(key: str, source: Path) -> int:
        nonlocal refused
        if refused < 3:  # at the call's end, then on two retries: the bucket is away a while
            refused += 1
            raise StorageError("the bucket is unreachable")
        return await real_put(key, source)

    rt.storage.put_file = put_file
    app = await connect(gate)
    clip = noise(300, seed=96)
    try:
        cid = (await app.call("conversation_start"))["conversationId"]
        await paced_turn(app, clip, 1)
        await app.call("conversation_end")
        (ended,) = await app.wait_for("conversation_ended")
        assert ended["audioUrl"] is None
        # The running process stores it when the bucket answers again, and the app hears of it.
        (ready,) = await app.wait_for("recording_ready")
    finally:
        await app.sio.disconnect()
    assert ready["conversationId"] == cid and ready["audioSource"] == "relay"
    assert refused == 3
    async with httpx.AsyncClient(base_url=gate.url) as client:
        call = (await client.get(f"/api/calls/{cid}", headers=gate.headers())).json()
        pcm = wav_pcm((await client.get(call["audioUrl"], headers=gate.headers())).content)
    assert (call["status"], call["endReason"], call["audioSource"]) == ("ended", "client", "relay")
    at = find(pcm, clip[:64])
    assert at >= 0 and pcm[at : at + len(clip)] == clip
    assert list(gate.settings.spool_dir.iterdir()) == []
    await assert_nothing_left(gate)


@pytest.mark.realtime
async def test_a_server_stopping_mid_call_ends_it_server_shutdown_telling_the_app_and_storing_it(
    tmp_path, simulator
):
    gate = start_gate(tmp_path, simulator)
    app = await connect(gate)
    clip = noise(300, seed=97)
    try:
        cid = (await app.call("conversation_start"))["conversationId"]
        await paced_turn(app, clip, 1)
        await asyncio.to_thread(gate.server.stop)  # what SIGTERM does to `talkgate serve`
        (ended,) = await app.wait_for("conversation_ended")  # heard before the socket closed
    finally:
        await app.sio.disconnect()
    assert ended["conversationId"] == cid and ended["reason"] == "server_shutdown"
    assert ended["audioUrl"] == f"{gate.url}/api/calls/{cid}/audio"
    again = start_gate(tmp_path, simulator)  # the same data: the call log as the user sees it
    try:
        async with httpx.AsyncClient(base_url=again.url) as client:
            call = (await client.get(f"/api/calls/{cid}", headers=again.headers())).json()
            blob = (await client.get(f"/api/calls/{cid}/audio", headers=again.headers())).content
    finally:
        again.server.stop()
    assert (call["status"], call["endReason"], call["audioSource"]) == ("ended", "server_shutdown", "relay")
    pcm = wav_pcm(blob)
    at = find(pcm, clip[:64])
    assert at >= 0 and pcm[at : at + len(clip)] == clip


@pytest.mark.realtime
async def test_an_app_dropping_mid_turn_keeps_the_audio_it_sent(gate):
    app = await connect(gate)
    clip = noise(300, seed=95)
    cid = (await app.call("conversation_start"))["conversationId"]
    await app.call("user-audio-start")
    for i in range(0, len(clip), 3200):
        await asyncio.sleep(0.1)
        await app.call("send_audio", {"audio": base64.b64encode(clip[i : i + 3200]).decode()})
    await app.sio.disconnect()  # mid-turn: no user-audio-end
    rt = gate.app.runtime
    await wait_until(lambda: not rt.relays and not rt.tasks)
    async with httpx.AsyncClient(base_url=gate.url) as client:
        call = (await client.get(f"/api/calls/{cid}", headers=gate.headers())).json()
        pcm = wav_pcm((await client.get(call["audioUrl"], headers=gate.headers())).content)
    assert call["status"] == "ended" and call["endReason"] == "disconnected"
    at = find(pcm, clip[:64])
    assert at >= 0 and pcm[at : at + len(clip)] == clip
    await assert_nothing_left(gate)


async def test_a_header_only_recording_left_by_a_crash_is_not_attached(gate):
    # A media-stream recording that never received audio, left in the spool by a crash: repaired,
    # it is a bare WAV header, which would outrank the provider's copy. It is removed instead.
    rt = gate.app.runtime
    async with httpx.AsyncClient(base_url=gate.url) as client:
        r = await client.post(
            "/api/elevenlabs-signed-url", headers=gate.headers(), json={"conversationId": "conv_crash_silent"}
        )
        assert r.status_code == 200, r.text
        call = await rt.repo.call_by_conversation("conv_crash_silent")
        await rt.repo.mark_recording("conv_crash_silent", "media_stream")
        gate.settings.spool_dir.mkdir(parents=True, exist_ok=True)
        (gate.settings.spool_dir / f"{call.id}.media_stream.wav.part").write_bytes(wav_header(0, 16000))
        assert await rt.recordings.recover() == ["conv_crash_silent"]
        row = (await client.get("/api/calls/conv_crash_silent", headers=gate.headers())).json()
    assert row["status"] == "recovered" and row["endReason"] == "server_crash"
    assert row["audioSource"] is None and row["audioBytes"] is None and row["audioUrl"] is None
    assert list(gate.settings.spool_dir.iterdir()) == []
