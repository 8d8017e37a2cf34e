"""Database fixtures: every test that takes `database` runs once on SQLite and once on
PostgreSQL. Each backend's database is made once per run (PostgreSQL: a database of the run's
own on the machine's server, dropped at the end) and migrated; after each test every table is
emptied, so tests do not see each other's rows.

Import the fixtures into a suite's conftest.py: `from tests.db_fixtures import *  # noqa`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests import db_servers
from workers.db.engine import Database
from workers.db.tables import metadata

BACKENDS = ["sqlite", "postgresql"]


def _migrated(url: str) -> None:
    async def migrate() -> None:
        database = Database(url)
        try:
            await database.migrate()
        finally:
            await database.close()

    asyncio.run(migrate())


@pytest.fixture(scope="session")
def private_postgres() -> Iterator[db_servers.PrivatePostgres | None]:
    """A private server when the machine's is not reachable (None when it is)."""
    if db_servers.postgres_reachable():
        yield None
        return
    if db_servers.postgres_binaries() is None:
        yield None
        return
    server = db_servers.PrivatePostgres().init()
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    private_postgres: db_servers.PrivatePostgres | None,
) -> Iterator[str]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "switchboard.db"
        url = f"sqlite:///{path}"
        _migrated(url)
        yield url
        return
    server = private_postgres.url if private_postgres else db_servers.SHARED_URL
    if private_postgres is None and not db_servers.postgres_reachable(server):
        pytest.skip(f"no PostgreSQL at {server} and no initdb to start one")
    url = db_servers.create_database(server)
    try:
        _migrated(url)
        yield url
    finally:
        db_servers.drop_database(url)


async def empty_tables(database: Database) -> None:
    async with database.transaction() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(sa.delete(table))


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    try:
        yield db
        await empty_tables(db)
    finally:
        await db.close()
