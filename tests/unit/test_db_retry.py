"""Which database errors are "the database is away, try again": a PostgreSQL restart must be."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_dbapi
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from talkgate.persistence.retry import sqlstate, transient

pytestmark = pytest.mark.unit


def wrapped(driver_error: Exception) -> DBAPIError:
    """The chain SQLAlchemy's asyncpg dialect raises: its adapter's Error (carrying the SQLSTATE,
    raised from asyncpg's exception) inside a DBAPIError."""
    adapted = AsyncAdapt_asyncpg_dbapi.Error(f"{type(driver_error)}: {driver_error}")
    adapted.pgcode = adapted.sqlstate = getattr(driver_error, "sqlstate", None)  # type: ignore[attr-defined]
    adapted.__cause__ = driver_error
    error = DBAPIError.instance(None, None, adapted, AsyncAdapt_asyncpg_dbapi.Error)
    assert type(error) is DBAPIError
    return error


@pytest.mark.parametrize(
    "driver_error",
    [
        asyncpg.exceptions.CannotConnectNowError("the database system is shutting down"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.exceptions.ConnectionFailureError("connection failure"),
    ],
)
def test_a_postgresql_restart_is_transient(driver_error):
    error = wrapped(driver_error)
    assert sqlstate(error) == driver_error.sqlstate
    assert transient(error)


def test_a_wrong_write_is_not_transient():
    error = wrapped(asyncpg.exceptions.UniqueViolationError("duplicate key"))
    assert sqlstate(error) == "23505" and not transient(error)
    assert not transient(IntegrityError("INSERT", {}, Exception("duplicate")))


def test_unreachable_and_invalidated_connections_stay_transient():
    assert transient(OperationalError("SELECT 1", {}, ConnectionRefusedError("refused")))
    assert transient(ConnectionRefusedError("refused"))
    invalidated = DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    assert transient(invalidated)
