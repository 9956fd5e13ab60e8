"""The benchmarks are run by hand, not by CI: make sure each still starts (its imports, its options)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.timing import scaled

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCH.glob("*.py")))
def test_the_benchmark_starts(script: str) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True, timeout=scaled(60)
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


START_LINE = re.compile(
    r"^start: [0-9.]+ ms CPU per conversation; ready [0-9.]+ ms, provider [0-9.]+ ms, "
    r"overhead -?[0-9.]+ ms; burst of 5: p50 [0-9]+ ms$"
)


def test_the_start_benchmark_runs_small() -> None:
    """bench/start.py against a real talkgate serve and simulator, a few starts: its last line."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "start.py"), "--sequential", "3", "--burst", "5"],
        capture_output=True,
        text=True,
        timeout=scaled(120),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert START_LINE.match(done.stdout.splitlines()[-1]), done.stdout


PIN_LINE = re.compile(
    r"^capacity per core at p99 < 20 ms: talkgate [0-9]+, python-socketio [0-9]+, "
    r"node socket\.io [0-9]+, bare websockets [0-9]+ sessions$"
)
STEP_FIGURES = re.compile(
    r"[0-9.]+ context switches per chunk, waited for a CPU [0-9]+ % of the time, load\+sink "
)
PIN_STEP = re.compile(
    r"^  (talkgate|python-socketio|node socket\.io|bare websockets) +2 sessions: p50 ", re.M
)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="--pin needs two cores")
@pytest.mark.skipif(
    not (BENCH / "node" / "node_modules").is_dir(),
    reason="the Node relay's packages: make bench-pin installs them",
)
def test_the_pinned_capacity_benchmark_runs_small(tmp_path: Path) -> None:
    """bench/relay.py --pin --keep with every relay (talkgate recording) at 2 sessions, one
    bisection step each: each step's figures (context switches, the wait for a CPU, collections,
    the episodes over 20 ms), then the last line; bench/episodes.py then reads every run kept."""
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "relay.py"),
            "--pin",
            "--pin-max",
            "2",
            "--pin-step",
            "2",
            "--duration",
            "1",
            "--keep",
            str(tmp_path / "kept"),  # not made yet: the benchmark makes it
        ],
        capture_output=True,
        text=True,
        timeout=scaled(300),
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-3000:]
    steps = PIN_STEP.findall(done.stdout)
    assert steps == ["talkgate", "python-socketio", "node socket.io", "bare websockets"], done.stdout
    assert "µs per chunk" in done.stdout
    assert PIN_LINE.match(done.stdout.splitlines()[-1]), done.stdout
    assert len(STEP_FIGURES.findall(done.stdout)) == 4, done.stdout
    assert (
        len(re.findall(r"^    context switches per chunk, voluntary/involuntary: main ", done.stdout, re.M))
        == 4
    )
    assert len(re.findall(r"^    [0-9]+ episodes over 20 ms", done.stdout, re.M)) == 4, done.stdout
    (kept,) = (tmp_path / "kept").iterdir()
    for stem in ("talkgate-2", "minimal-2", "node-2", "bare-2"):
        assert (kept / f"{stem}-latency.json").is_file() and (kept / f"{stem}-schedstat.txt").is_file()
    listed = subprocess.run(
        [sys.executable, str(BENCH / "episodes.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=scaled(60),
    )
    assert listed.returncode == 0, listed.stderr
    runs = re.findall(r"^\S+/(\S+): [0-9]+ chunks, p99 ", listed.stdout, re.M)
    assert sorted(runs) == ["bare-2", "minimal-2", "node-2", "talkgate-2"], listed.stdout
