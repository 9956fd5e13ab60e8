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


# SQLSTATE classes that mean "not now": 08 connection exceptions, 57P0x the server shutting down
# (57P01 admin shutdown, 57P02 crash shutdown) or not accepting connections yet (57P03, starting up).
UNAVAILABLE_SQLSTATES = ("08", "57P")


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE a driver error carries, looked for along its chain (SQLAlchemy's wrapper, the
    dialect's adapter, asyncpg's own exception)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        state = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if isinstance(state, str):
            return state
        seen = getattr(seen, "orig", None) or getattr(seen, "driver_exception", None) or seen.__cause__
    return None


def transient(exc: BaseException) -> bool:
    if isinstance(exc, DBAPIError) and not isinstance(exc, OperationalError):
        if exc.connection_invalidated:
            return True
        # A PostgreSQL restart: "the database system is shutting down / starting up" while connecting
        # is a plain DBAPIError, not an OperationalError, yet the database is only away.
        state = sqlstate(exc)
        return state is not None and state.startswith(UNAVAILABLE_SQLSTATES)
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
