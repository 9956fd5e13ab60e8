"""The push-to-talk relay on the libraries' own paths: with fast paths off, and where
python-engineio differs from what the read loop replaces, a turn still reaches the provider byte
for byte and its echo comes back whole; ``/metrics`` says which fast paths are in use."""

from __future__ import annotations

import base64
import logging
import re
from typing import Any

import httpx
import pytest
from engineio.async_drivers import asgi

from talkgate.fastpaths import engine_loop
from talkgate.serving import ServerThread
from tests.support.gate import AppClient, Gate, gated, paced_turn
from tests.support.provider_socket import provider_cid

GAUGE = re.compile(r'^talkgate_fastpath_active\{name="(\w+)"\} (\S+)$', re.MULTILINE)
# (gc_pacing is the serving process's, set by `talkgate serve`: tests/test_fastpaths.py)
RELAY_PATHS = ("engineio_loop", "send_audio_predecode", "backlog_reader", "upstream_write")


def clip(ms: int) -> bytes:
    return bytes(range(256)) * (32 * ms // 256)  # PCM16 at 16 kHz: 32 bytes a millisecond


async def upstream_audio(simulator: ServerThread, conversation_id: str) -> bytes:
    async with httpx.AsyncClient() as client:
        r = await client.get(f"{simulator.http_url}/_simulator/conversations/{conversation_id}/frames")
    frames: list[dict[str, Any]] = r.json()["frames"]
    return b"".join(base64.b64decode(f["user_audio_chunk"]) for f in frames if "user_audio_chunk" in f)


async def relayed_turn(app: AppClient, simulator: ServerThread, gate: Gate) -> None:
    started = await app.call("conversation_start", {"voice": "default"})
    assert started["ok"], started
    audio = clip(500)
    await paced_turn(app, audio, 1)
    assert app.agent_audio()[: len(audio)] == audio  # the simulator's agent echoes the turn
    assert await upstream_audio(simulator, await provider_cid(gate, started["conversationId"])) == audio
    await app.call("conversation_end")
    (ended,) = await app.wait_for("conversation_ended")
    assert ended["reason"] == "client"


async def fastpath_gauges(url: str) -> dict[str, float]:
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{url}/metrics")).text
    return {name: float(value) for name, value in GAUGE.findall(text)}


async def test_with_fast_paths_off_the_relay_runs_on_the_libraries_paths(tmp_path, simulator) -> None:
    async with gated(tmp_path, simulator, fastpaths=False) as (gate, app):
        assert gate.app.sio.eio._async["websocket"] is engine_loop.GuardedWebSocket  # the library's loop
        gauges = await fastpath_gauges(gate.url)
        assert [gauges[name] for name in RELAY_PATHS] == [0.0, 0.0, 0.0, 0.0]
        await relayed_turn(app, simulator, gate)


async def test_where_engineio_differs_the_relay_keeps_its_loop_and_says_so(
    tmp_path, simulator, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    caplog.set_level(logging.INFO)

    class ARelease(asgi.WebSocket):  # type: ignore[misc]
        """As a python-engineio whose websocket driver is another class."""

    monkeypatch.setitem(asgi._async, "websocket", ARelease)  # the driver table servers are built with
    async with gated(tmp_path, simulator, fastpaths=True) as (gate, app):
        assert gate.app.sio.eio._async["websocket"] is ARelease
        gauges = await fastpath_gauges(gate.url)
        assert gauges["engineio_loop"] == 0.0 and gauges["send_audio_predecode"] == 0.0
        assert gauges["backlog_reader"] == 1.0 and gauges["upstream_write"] == 1.0
        await relayed_turn(app, simulator, gate)
    assert "fast path engineio_loop: off (python-engineio's driver table differs)" in caplog.text


async def test_with_fast_paths_on_metrics_say_each_took(tmp_path, simulator) -> None:
    async with gated(tmp_path, simulator, fastpaths=True) as (gate, app):
        gauges = await fastpath_gauges(gate.url)
        assert [gauges[name] for name in RELAY_PATHS] == [1.0, 1.0, 1.0, 1.0]
        await relayed_turn(app, simulator, gate)
