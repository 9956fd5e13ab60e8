"""The benchmarks are run by hand, not by CI: make sure each still starts (its imports, its options)."""

from __future__ import annotations

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
