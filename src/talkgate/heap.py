"""The garbage collector's policy for a serving process.

A relay process holds a few hundred thousand long-lived objects (the libraries' modules, classes
and caches, then every live call's sockets, tasks and buffers). CPython's full collections walk
all of them: measured with 400 relayed calls (``bench/relay.py``), each paused the event loop for
130-190 ms, every ten seconds or so, which every chunk in flight then waited for. So, once the app
is built, ``gc.freeze()`` moves what exists then (about 170,000 objects: imports and app set-up,
which live as long as the process) out of the collector's sight for good: a full collection with
400 calls then takes 80-130 ms instead. The rest of that pause is the live calls' own objects
(about 330 each: sockets, tasks, buffers), which only more processes divide.

Raising the young-generation threshold tenfold was tried and left out: it made young collections
during a burst of conversation starts take 50-75 ms, and its effect on the steady state's tail was
lost in this machine's run-to-run noise.

Pauses are observed in ``talkgate_gc_pause_seconds`` (``/metrics``), by generation.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from talkgate import metrics

_started: dict[int, float] = {}


def _observe(phase: str, info: dict[str, Any]) -> None:
    generation = info["generation"]
    if phase == "start":
        _started[generation] = time.perf_counter()
    elif (began := _started.pop(generation, None)) is not None:
        metrics.GC_PAUSE_SECONDS.labels(str(generation)).observe(time.perf_counter() - began)


def settle() -> None:
    """Call once per serving process, after the app is built and before it serves."""
    if _observe not in gc.callbacks:
        gc.callbacks.append(_observe)  # first: the set-up's own full collection is the first figure
    gc.collect()
    gc.freeze()
