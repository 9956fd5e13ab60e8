"""Every wait in the tests, scaled by one factor: ``TALKGATE_TEST_SLOWDOWN`` (3 on a loaded CI box).

A test waits on an event where it can; where what it watches has none (another thread, another
process), it polls with ``wait_until`` (async) or ``poll_until`` (sync). Any other bound on a wait
(a subprocess, an HTTP client, a browser step) is ``scaled(seconds)`` or ``TIMEOUT``."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

SLOWDOWN = float(os.environ.get("TALKGATE_TEST_SLOWDOWN", "1"))
TIMEOUT = 10.0 * SLOWDOWN  # the default bound of any one wait


def scaled(seconds: float) -> float:
    """A bound on a wait, stretched for a slow machine."""
    return seconds * SLOWDOWN


async def wait_until(condition: Callable[[], bool], within: float = TIMEOUT) -> None:
    """Poll a condition another thread or process makes true, for at most ``within`` seconds."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - what is watched has no event to await
            await asyncio.sleep(0.005)


def poll_until(condition: Callable[[], bool], within: float = TIMEOUT, *, what: str = "condition") -> None:
    """``wait_until`` for code without an event loop (a process starting, a browser page)."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not true within {within:.1f} s")
        time.sleep(0.02)
