"""Retrying a write when the database is briefly unreachable (a restart, a fail-over): the end of
a call must not lose its call log to a few seconds of outage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

log = logging.getLogger("talkgate.persistence")

T = TypeVar("T")

# Errors that say "the database is not there right now", not "this write is wrong".
TRANSIENT: tuple[type[BaseException], ...] = (OperationalError, DBAPIError, OSError, TimeoutError)
SHORT = (0.25, 0.5, 1.0, 2.0)  # about 4 s: what an app waits for at the end of a call


def transient(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError):
        return bool(exc.connection_invalidated)
    return isinstance(exc, TRANSIENT)


async def retry_transient(
    op: Callable[[], Awaitable[T]], what: str, delays: Sequence[float] | None = None
) -> T:
    """``op()``, tried again after each delay (default ``SHORT``) while it fails with a transient
    error; the last error is raised."""
    for delay in SHORT if delays is None else delays:
        try:
            return await op()
        except Exception as exc:
            if not transient(exc):
                raise
            log.warning("%s: database unavailable (%s); retrying in %.2f s", what, type(exc).__name__, delay)
            await asyncio.sleep(delay)
    return await op()
