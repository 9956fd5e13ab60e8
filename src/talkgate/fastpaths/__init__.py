"""The relay's hot-path shortcuts, fenced in one place.

Each one reads or replaces a library's internals to spare the relay per-chunk work, and each has
the library's own path to fall back on:

- ``engineio_loop``: python-engineio's websocket read loop replaced by a leaner one (``engine_loop``);
- ``send_audio_predecode``: ``send_audio`` taken by its text before python-socketio decodes it
  (``audio_shortcut``; rides on ``engineio_loop``);
- ``backlog_reader``: an app socket's outgoing queue length read from python-socketio/engineio's
  tables (``backlog``), so that the relay drops agent audio for an app that does not read;
- ``upstream_write``: frames to the provider written through websockets' protocol object
  (``upstream_write``);
- ``gc_pacing``: the process's garbage collector run on a pacer of its own (``gc_pacing``).

Each installs itself at start-up, checks that the library has what it reads (the versions checked
are pinned in pyproject.toml), says in one log line whether it took, and sets
``talkgate_fastpath_active{name}`` to 1 or 0. ``TALKGATE_FASTPATHS=off`` leaves every library on
its own path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from talkgate import metrics
from talkgate.fastpaths import audio_shortcut, backlog, engine_loop, gc_pacing, upstream_write
from talkgate.fastpaths.backlog import BacklogOf
from talkgate.logs import PeerNoise
from talkgate.settings import Settings

log = logging.getLogger("talkgate.fastpaths")


class FastPath(StrEnum):
    ENGINEIO_LOOP = "engineio_loop"
    SEND_AUDIO_PREDECODE = "send_audio_predecode"
    BACKLOG_READER = "backlog_reader"
    UPSTREAM_WRITE = "upstream_write"
    GC_PACING = "gc_pacing"


OFF_BY_SETTING = "off (TALKGATE_FASTPATHS=off)"


def report(name: FastPath, took: bool, why_not: str = OFF_BY_SETTING) -> bool:
    """The start-up line and the gauge of one fast path; returns ``took``."""
    metrics.FASTPATH_ACTIVE.labels(name.value).set(1 if took else 0)
    if took:
        log.info("fast path %s: on", name)
    elif why_not == OFF_BY_SETTING:
        log.info("fast path %s: %s, the library's path is used", name, why_not)
    else:
        log.warning("fast path %s: off (%s), the library's path is used", name, why_not)
    return took


@dataclass(frozen=True)
class RelayFastPaths:
    """What ``install_relay`` installed on one Socket.IO server."""

    engineio_loop: bool
    send_audio_predecode: bool
    backlog_of: BacklogOf  # Socket.IO sid → its outgoing queue length (0 on the library's path)
    upstream_write: bool


def install_relay(
    sio: Any, settings: Settings, *, on_audio: audio_shortcut.Handler, noise: PeerNoise
) -> RelayFastPaths:
    """Install the relay's fast paths on ``sio`` (talkgate's RelayServer) and this process's
    upstream sockets; ``on_audio`` is the ``send_audio`` handler the shortcut hands events to."""
    on = settings.fastpaths
    loop_fits = engine_loop.library_fits(sio.eio)
    shortcut_fits = audio_shortcut.library_fits(sio)
    shortcut = audio_shortcut.shortcut(sio, on_audio) if on and loop_fits and shortcut_fits else None
    took_loop = on and loop_fits and engine_loop.install(sio.eio, shortcut, noise)
    if not took_loop:
        engine_loop.guard(sio.eio, noise)  # a bad frame closes its socket on the library's loop too
    report(FastPath.ENGINEIO_LOOP, took_loop, _why(on, "python-engineio's driver table differs"))
    report(
        FastPath.SEND_AUDIO_PREDECODE,
        took_loop and shortcut is not None,
        _why(on, "python-socketio's sid tables differ" if loop_fits else "it rides on engineio_loop"),
    )
    backlog_fits = backlog.library_fits(sio)
    took_backlog = report(
        FastPath.BACKLOG_READER, on and backlog_fits, _why(on, "python-socketio's socket tables differ")
    )
    writes = upstream_write.library_fits()
    upstream_write.enable(on and writes)
    report(FastPath.UPSTREAM_WRITE, on and writes, _why(on, "websockets' connection differs"))
    return RelayFastPaths(
        engineio_loop=took_loop,
        send_audio_predecode=took_loop and shortcut is not None,
        backlog_of=backlog.reader(sio) if took_backlog else backlog.empty,
        upstream_write=on and writes,
    )


def _why(on: bool, library_differs: str) -> str:
    return library_differs if on else OFF_BY_SETTING


@contextlib.contextmanager
def paced_collector(loop: asyncio.AbstractEventLoop, settings: Settings) -> Iterator[gc_pacing.Pacer | None]:
    """The serving process's garbage-collector policy, for as long as it serves (``gc_pacing``)."""
    report(FastPath.GC_PACING, settings.fastpaths)
    with gc_pacing.paced(loop, settings.fastpaths) as pacer:
        yield pacer


__all__ = ["FastPath", "RelayFastPaths", "install_relay", "paced_collector", "report"]
