"""The repository on SQLite and on PostgreSQL, for every persistence test."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import delete

from talkgate.persistence.engine import make_engine, make_sessionmaker
from talkgate.persistence.migrate import upgrade
from talkgate.persistence.models import User
from talkgate.persistence.repository import Repository


@pytest.fixture
async def repo(database_url):
    with ThreadPoolExecutor(1) as pool:  # Alembic runs its own event loop
        pool.submit(upgrade, database_url).result()
    engine = make_engine(database_url)
    yield Repository(make_sessionmaker(engine))
    async with engine.begin() as conn:  # PostgreSQL's database is shared by the run: leave it empty
        await conn.execute(delete(User))
    await engine.dispose()
