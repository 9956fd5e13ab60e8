"""Where a relay's tail came from: the stalls of a run kept by ``bench/relay.py --keep DIR``.

    python bench/episodes.py DIR [--over-ms 20]

For each relay run kept under DIR (``<kind>-latency.json``: every chunk's latency and arrival time;
``<kind>-schedstat.txt``: the relay's main thread and its other threads sampled every 5 ms; a
floor's ``<kind>.log``: its garbage collections of 1 ms or more), the chunks slower than
``--over-ms`` are grouped into episodes (chunks sent less than 50 ms apart), and each episode is
printed with what the relay's main thread did over it, from the first slow chunk's send to the
last one's arrival: the CPU time it ran and the time it waited for a CPU (runnable, not running:
the machine's other work on its core), the same for its other threads, and the collections that
began in it. An episode the relay spent running is the relay's own work; one it spent waiting is
the machine's; one with neither is the relay waiting on something else (the GIL held by another
thread, the network, the sink).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

GAP_S = 0.05  # slow chunks sent further apart than this are different episodes


def episodes(sent: np.ndarray, slow: np.ndarray) -> list[np.ndarray]:
    order = slow[np.argsort(sent[slow])]
    if not len(order):
        return []
    cuts = np.where(np.diff(sent[order]) > GAP_S)[0] + 1
    return list(np.split(order, cuts))


def report(latency: Path, over_ms: float, *, verbose: bool = True) -> str:
    """Print the run's episodes (``verbose``); returns the one-line summary of them."""
    stem = latency.name.removesuffix("-latency.json")
    stats = json.loads(latency.read_text())
    lat, at = np.array(stats["chunk"]), np.array(stats["at"])
    reset = float(stats["reset"])
    sent = at - lat / 1000  # s since the sink's reset
    samples_path = latency.with_name(f"{stem}-schedstat.txt")
    samples = np.loadtxt(samples_path, ndmin=2) if samples_path.exists() else np.zeros((0, 5))
    t = samples[:, 0] / 1e9 - reset if len(samples) else samples[:, 0]
    log = latency.with_name(f"{stem}.log")
    pauses = [
        (float(began) - reset, float(ms))
        for line in (log.read_text().splitlines() if log.exists() else [])
        if line.startswith("bench-gc ")
        for _, _, began, ms in [line.split()]
    ]
    slow = np.where(lat > over_ms)[0]
    if verbose:
        print(
            f"{latency.parent.name}/{stem}: {len(lat)} chunks, p99 {np.percentile(lat, 99):.1f} ms, "
            f"{len(slow)} over {over_ms:g} ms ({100 * len(slow) / max(1, len(lat)):.1f} %)"
        )
    ran_all = waited_all = span_all = 0.0
    found = episodes(sent, slow)
    collections = 0
    for e in found:
        start, end = float(sent[e].min()), float(at[e].max())
        line = f"  {start:6.2f}-{end:6.2f} s: {len(e):5d} chunks, worst {lat[e].max():6.1f} ms"
        if len(t):
            i, j = np.searchsorted(t, [start, end])
            i, j = max(0, i - 1), min(len(t) - 1, j)
            ran = (samples[j, 1] - samples[i, 1]) / 1e6
            waited = (samples[j, 2] - samples[i, 2]) / 1e6
            span = (t[j] - t[i]) * 1000
            ran_all, waited_all, span_all = ran_all + ran, waited_all + waited, span_all + span
            line += f"; over {span:4.0f} ms the relay ran {ran:4.0f} ms, waited for a CPU {waited:4.0f} ms"
            if samples.shape[1] >= 5:  # its other threads (the disk thread, the pools)
                others = (samples[j, 3:5] - samples[i, 3:5]) / 1e6
                line += f" (other threads: ran {others[0]:3.0f}, waited {others[1]:3.0f})"
        gcs = [ms for began, ms in pauses if start - 0.01 <= began <= end]
        collections += len(gcs)
        if gcs:
            line += f"; {len(gcs)} collection(s), {sum(gcs):.0f} ms, the longest {max(gcs):.0f} ms"
        if verbose:
            print(line)
    summary = f"{len(found)} episodes over {over_ms:g} ms"
    if span_all:
        summary += (
            f" ({span_all:.0f} ms in all): the relay ran {100 * ran_all / span_all:.0f} % of them "
            f"and waited for a CPU {100 * waited_all / span_all:.0f} %"
        )
    if pauses:
        summary += f"; {collections} collection(s) began in them"
    if verbose:
        print("  in all: " + summary)
        if len(t) > 1:
            whole = (t[-1] - t[0]) * 1000
            ran, waited = (samples[-1, 1:3] - samples[0, 1:3]) / 1e6 / whole * 100
            print(
                f"  the whole sampled time ({whole / 1000:.1f} s): ran {ran:.0f} %, "
                f"waited for a CPU {waited:.0f} %"
            )
    return summary


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dir", type=Path)
    p.add_argument("--over-ms", type=float, default=20.0)
    args = p.parse_args()
    for latency in sorted(args.dir.rglob("*-latency.json")):
        report(latency, args.over_ms)


if __name__ == "__main__":
    main()
