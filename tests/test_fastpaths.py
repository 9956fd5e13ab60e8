"""talkgate/fastpaths: each fast path takes on the libraries checked, says so (a log line and the
``talkgate_fastpath_active`` gauge), and falls back to the library's own path where fast paths are
off (``TALKGATE_FASTPATHS=off``) or where the library differs from what it reads."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import websockets
from engineio.async_drivers import asgi
from prometheus_client import REGISTRY
from websockets.asyncio.client import ClientConnection

from talkgate import fastpaths
from talkgate.fastpaths import FastPath, backlog, engine_loop, gc_pacing, upstream_write
from talkgate.logs import PeerNoise
from talkgate.settings import Settings
from talkgate.web.sio import RelayServer, create_sio
from tests.support.timing import TIMEOUT

RELAY_PATHS = [p for p in FastPath if p is not FastPath.GC_PACING]


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def active(name: FastPath) -> float | None:
    return REGISTRY.get_sample_value("talkgate_fastpath_active", {"name": name.value})


def lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "talkgate.fastpaths"]


@pytest.fixture(autouse=True)
def upstream_write_as_configured() -> Iterator[None]:
    """The direct write's switch is per process: leave it as this run's settings have it."""
    yield
    upstream_write.enable(settings().fastpaths and upstream_write.library_fits())


def relay_server() -> RelayServer:
    return RelayServer(
        max_attachments=10, noise=PeerNoise(10), async_mode="asgi", max_http_buffer_size=1_000_000
    )


async def on_audio(sid: str, payload: Any) -> None:
    return None


def test_on_the_libraries_checked_every_relay_fast_path_takes_and_says_so(caplog) -> None:
    caplog.set_level(logging.INFO)
    sio = create_sio(lambda: None, settings(fastpaths=True))  # type: ignore[arg-type, return-value]
    assert sio.eio._async["websocket"] is engine_loop._WebSocket
    assert sio.eio._talkgate_shortcut is not None
    assert lines(caplog) == [(logging.INFO, f"fast path {p}: on") for p in RELAY_PATHS]
    assert [active(p) for p in RELAY_PATHS] == [1.0] * len(RELAY_PATHS)


def test_off_by_setting_every_library_keeps_its_own_path(caplog) -> None:
    caplog.set_level(logging.INFO)
    sio = create_sio(lambda: None, settings(fastpaths=False))  # type: ignore[arg-type, return-value]
    # python-engineio's own loop, only guarded against undecodable frames (not a shortcut)
    assert sio.eio._async["websocket"] is engine_loop.GuardedWebSocket
    assert getattr(sio.eio, "_talkgate_shortcut", None) is None
    assert lines(caplog) == [
        (logging.INFO, f"fast path {p}: off (TALKGATE_FASTPATHS=off), the library's path is used")
        for p in RELAY_PATHS
    ]
    assert [active(p) for p in RELAY_PATHS] == [0.0] * len(RELAY_PATHS)
    assert not upstream_write.usable(object.__new__(ClientConnection))


def test_the_setting_reads_off_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("TALKGATE_FASTPATHS", "off")
    assert settings().fastpaths is False
    monkeypatch.setenv("TALKGATE_FASTPATHS", "on")
    assert settings().fastpaths is True


def test_an_engineio_that_differs_keeps_its_loop_and_the_audio_shortcut_stays_off(caplog) -> None:
    caplog.set_level(logging.INFO)
    sio = relay_server()

    class OtherDriver(asgi.WebSocket):  # type: ignore[misc]
        pass

    sio.eio._async = {**sio.eio._async, "websocket": OtherDriver}
    fast = fastpaths.install_relay(sio, settings(fastpaths=True), on_audio=on_audio, noise=sio.noise)
    assert sio.eio._async["websocket"] is OtherDriver
    assert not fast.engineio_loop and not fast.send_audio_predecode
    assert (
        logging.WARNING,
        "fast path engineio_loop: off (python-engineio's driver table differs), the library's path is used",
    ) in lines(caplog)
    assert (
        logging.WARNING,
        "fast path send_audio_predecode: off (it rides on engineio_loop), the library's path is used",
    ) in lines(caplog)
    assert active(FastPath.ENGINEIO_LOOP) == 0.0 and active(FastPath.SEND_AUDIO_PREDECODE) == 0.0
    assert fast.backlog_of is not backlog.empty  # the others do not depend on it


def test_a_socketio_that_differs_reads_every_backlog_as_empty() -> None:
    sio = SimpleNamespace(manager=object(), eio=SimpleNamespace(sockets={}))
    assert not backlog.library_fits(sio)
    real = relay_server()
    assert backlog.library_fits(real)
    assert backlog.reader(real)("no-such-sid")() == 0
    assert backlog.empty("any")() == 0


def test_a_websockets_that_differs_sends_through_the_library(monkeypatch, caplog) -> None:
    caplog.set_level(logging.INFO)
    monkeypatch.setattr(ClientConnection, "send_data", None)  # a release that renamed it
    sio = relay_server()
    fast = fastpaths.install_relay(sio, settings(fastpaths=True), on_audio=on_audio, noise=sio.noise)
    assert not fast.upstream_write and active(FastPath.UPSTREAM_WRITE) == 0.0
    assert (
        logging.WARNING,
        "fast path upstream_write: off (websockets' connection differs), the library's path is used",
    ) in lines(caplog)
    assert not upstream_write.usable(object.__new__(ClientConnection))


@pytest.mark.parametrize("on", [True, False], ids=["direct-write", "library-send"])
async def test_upstream_frames_arrive_in_order_whichever_path_wrote_them(on: bool) -> None:
    from talkgate.protocol import convai
    from talkgate.providers.elevenlabs import ElevenLabsConversation

    got: list[str] = []
    done = asyncio.Event()

    async def provider(ws: Any) -> None:
        got.append(await ws.recv())
        await ws.send(
            '{"type":"conversation_initiation_metadata","conversation_initiation_metadata_event":'
            '{"conversation_id":"c1","agent_output_audio_format":"pcm_16000",'
            '"user_input_audio_format":"pcm_16000"}}'
        )
        async for frame in ws:
            got.append(frame)
            if len(got) == 1 + 30:
                done.set()

    upstream_write.enable(on)
    async with websockets.serve(provider, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        conv = await ElevenLabsConversation.open(
            f"ws://127.0.0.1:{port}/", convai.ConversationInitiationClientData(), timeout=TIMEOUT
        )
        # every length form of a frame: 7-bit, 16-bit (the relay's 100 ms chunks), 64-bit
        sizes = (10, 1000, 4268, 70_000)
        chunks = [convai.UserAudioChunk(f"{i:04d}" + "A" * sizes[i % 4]) for i in range(30)]
        try:
            assert conv._direct is on
            for chunk in chunks:
                await conv.send(chunk)
            async with asyncio.timeout(TIMEOUT):
                await done.wait()
        finally:
            await conv.close()  # else the server's close would wait for this connection
    assert got[1:] == [c.serialize() for c in chunks]


async def test_gc_pacing_off_leaves_cpythons_collector_running(caplog) -> None:
    caplog.set_level(logging.INFO)
    was_enabled = gc.isenabled()
    gc.enable()
    try:
        with fastpaths.paced_collector(asyncio.get_running_loop(), settings(fastpaths=False)) as pacer:
            assert pacer is None and gc.isenabled()
            assert gc_pacing._observe in gc.callbacks  # pauses are still measured
        assert active(FastPath.GC_PACING) == 0.0
        with fastpaths.paced_collector(asyncio.get_running_loop(), settings(fastpaths=True)) as pacer:
            assert isinstance(pacer, gc_pacing.Pacer) and not gc.isenabled()
            assert active(FastPath.GC_PACING) == 1.0
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        if not was_enabled:
            gc.disable()
    assert lines(caplog) == [
        (logging.INFO, "fast path gc_pacing: off (TALKGATE_FASTPATHS=off), the library's path is used"),
        (logging.INFO, "fast path gc_pacing: on"),
    ]
