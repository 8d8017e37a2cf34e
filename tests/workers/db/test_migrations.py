"""The schema: `upgrade head` on an empty database gives exactly `tables.py` (so no revision
is missing), running it again changes nothing, and processes starting together take turns."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tests import db_servers
from workers.db.engine import Database
from workers.db.tables import metadata


def _differences(connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_the_migrated_schema_is_exactly_tables_py(database: Database) -> None:
    await database.migrate()
    async with database.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


@pytest.fixture
def empty_urls(database_url: str, tmp_path: Path) -> Iterator[list[str]]:
    """Databases with no tables yet, on the backend of `database_url`: several SQLite files
    (the race there needs rounds to show), two PostgreSQL databases."""
    if database_url.startswith("sqlite"):
        yield [f"sqlite:///{tmp_path / f'empty{i}.db'}" for i in range(8)]
        return
    server = database_url.rsplit("/", 1)[0] + "/postgres"
    made = [db_servers.create_database(server) for _ in range(2)]
    yield made
    for url in made:
        db_servers.drop_database(url)


async def test_processes_starting_together_migrate_once_and_again_harmlessly(
    empty_urls: list[str],
) -> None:
    # A race, so several rounds: without the migration lock a new SQLite file failed about
    # every other round ("table already exists", "database is locked").
    for url in empty_urls:
        databases = [Database(url) for _ in range(4)]
        try:
            await asyncio.gather(*(db.migrate() for db in databases))
            again = Database(url)
            await again.migrate()
            await again.close()
            async with databases[0].engine.connect() as conn:
                assert await conn.run_sync(_differences) == []
        finally:
            await asyncio.gather(*(db.close() for db in databases))
