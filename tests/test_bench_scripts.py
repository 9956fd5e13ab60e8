"""The benchmarks are run by hand, not by CI: make sure each still starts (its imports, its options)."""

from __future__ import annotations

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
