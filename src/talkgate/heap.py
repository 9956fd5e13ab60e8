"""The garbage collector's policy for a serving process.

A relay process holds a few hundred thousand long-lived objects (the libraries' modules, classes
and caches, then every live call's sockets, tasks and buffers). CPython's full collections walk
all of them: measured with 400 relayed calls (``bench/relay.py``), each paused the event loop for
130-190 ms, every ten seconds or so, which every chunk in flight then waited for. So, once the app
is built:

- ``gc.freeze()`` moves what exists then (about 170,000 objects: imports and app set-up, which
  live as long as the process) out of the collector's sight for good;
- a higher first threshold makes young collections ten times rarer. Each one then promotes fewer
  in-flight objects into the old generation, which is what makes a full collection due, so full
  collections (and their pauses) come about ten times less often. Objects are still reclaimed by
  reference counting at once; only cycles wait longer.

Pauses are observed in ``talkgate_gc_pause_seconds`` (``/metrics``), by generation.
"""

from __future__ import annotations

import gc
import time
from typing import Any

from talkgate import metrics

THRESHOLDS = (7000, 10, 10)  # CPython's defaults are (700, 10, 10)

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
    gc.set_threshold(*THRESHOLDS)
