"""Prometheus metrics, served at ``/metrics``.

With ``serve --workers`` the supervisor sets ``PROMETHEUS_MULTIPROC_DIR`` before it starts the
workers, so each writes its values to memory-mapped files there and any worker's ``/metrics``
answers for all of them (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import asyncio
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LIVE_CONVERSATIONS = Gauge(
    "talkgate_live_conversations",
    "Conversations being relayed or recorded now, by kind (relay, media_stream)",
    ["kind"],
    multiprocess_mode="livesum",
)
CONVERSATIONS = Counter("talkgate_conversations", "Conversations started, by kind", ["kind"])
TURNS = Counter("talkgate_turns", "Push-to-talk turns ended by apps")
RELAY_CHUNK_SECONDS = Histogram(
    "talkgate_relay_chunk_seconds",
    "Time talkgate holds an app's audio chunk: handler start to the upstream write",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
TURN_LATENCY_SECONDS = Histogram(
    "talkgate_turn_latency_seconds",
    "From the release of push-to-talk to the turn's first transcript or first agent audio",
    ["stage"],
    buckets=(0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0),
)
RECORDING_BYTES = Counter("talkgate_recording_bytes", "Bytes of recordings stored, by source", ["source"])
RECORDING_OVERFLOW = Counter(
    "talkgate_recording_overflow",
    "Times a live recording's audio came faster than it could be mixed or written "
    "(it waited for the disk; nothing is dropped)",
)
EVENT_LOOP_TASKS = Gauge(
    "talkgate_event_loop_tasks",
    "asyncio tasks alive in the worker's event loop (read when scraped)",
    multiprocess_mode="livesum",
)
GC_PAUSE_SECONDS = Histogram(
    "talkgate_gc_pause_seconds",
    "Event-loop pauses of the cyclic garbage collector, by generation (2: full collections)",
    ["generation"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
FASTPATH_ACTIVE = Gauge(
    "talkgate_fastpath_active",
    "1 where a hot-path shortcut (talkgate/fastpaths) took, 0 where the library's own path is used, by name",
    ["name"],
    multiprocess_mode="livemin",  # with workers: 1 only where every live worker has it
)
ERRORS = Counter("talkgate_errors", "Errors reported to apps (socket events and HTTP), by code", ["code"])


def render() -> tuple[bytes, str]:
    """The exposition text and its content type (called on the event loop)."""
    EVENT_LOOP_TASKS.set(len(asyncio.all_tasks()))
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
