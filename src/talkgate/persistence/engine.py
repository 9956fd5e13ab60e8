"""The async engine factory: SQLite by default, PostgreSQL by URL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from talkgate.persistence.migrate import ensure_sqlite_dir


def make_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        ensure_sqlite_dir(url)
        # One connection: SQLite has one writer at a time, and connections that contend for it wait
        # in SQLite's busy handler, which sleeps in growing steps (measured: 300 conversations
        # starting within a second took 6 s each with SQLAlchemy's default pool of 5 + 10). In the
        # pool's queue they wait on the event loop instead and go one after another at once.
        engine = create_async_engine(
            url, connect_args={"timeout": 30}, pool_size=1, max_overflow=0, pool_timeout=60
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _: Any) -> None:
            # Foreign keys for ON DELETE CASCADE; WAL so readers do not block the writer.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker:  # type: ignore[type-arg]
    return async_sessionmaker(engine, expire_on_commit=False)
