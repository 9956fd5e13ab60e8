"""Hostile-input budgets, and the count of inputs tried: every hostile test calls ``count(kind, n)``;
tests/hostile/conftest.py prints the totals at the end of the run."""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("TALKGATE_HOSTILE_EXAMPLES", "60"))


TRIED: Counter[str] = Counter()


# A live server keeps its state between examples on purpose (the sequences continue where the
# last one left off), so the per-example fixture reuse hypothesis warns about is what we want.
hostile = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("TALKGATE_HOSTILE_RANDOM") is None,  # CI: the same inputs each run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def count(kind: str, n: int = 1) -> None:
    TRIED[kind] += n
