"""Hostile input against a live server: a bounded number of examples in `make test`, many more with
``TALKGATE_HOSTILE_EXAMPLES`` (``make test-hostile``). Every test counts the inputs it tried; the
totals are printed at the end of the run and written to ``test-artifacts/hostile-inputs.json``."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.support.hostile import TRIED
from tests.support.timing import TIMEOUT

T = TypeVar("T")


class Driver:
    """An event loop on a thread of its own for the clients: hypothesis runs synchronous test
    bodies, which hand each step to this loop and wait for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="hostile-driver")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=TIMEOUT * 4)

    def close(self) -> None:
        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        self.run(cancel_the_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


@pytest.fixture
def driver() -> Iterator[Driver]:
    d = Driver()
    yield d
    d.close()


@pytest.fixture
def no_unhandled_errors(caplog):
    """Fails the test if talkgate or its server libraries logged an error with a traceback."""
    caplog.set_level(logging.WARNING)
    yield caplog
    crashes = [
        f"{r.name}: {r.getMessage()}"
        for r in caplog.records
        if r.levelno >= logging.ERROR and (r.exc_info or "Traceback" in r.getMessage())
    ]
    assert not crashes, crashes[:5]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not TRIED:
        return
    total = sum(TRIED.values())
    parts = ", ".join(f"{kind} {n}" for kind, n in sorted(TRIED.items()))
    terminalreporter.write_line(f"hostile inputs tried: {total} ({parts})")
    out = Path("test-artifacts")
    out.mkdir(exist_ok=True)
    (out / "hostile-inputs.json").write_text(json.dumps({"total": total, **TRIED}, indent=2))
