"""The schema: `upgrade head` on an empty database gives exactly `tables.py` (so no revision
is missing), running it again changes nothing, and processes starting together take turns."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from workers.db.engine import Database
from workers.db.tables import metadata


def _differences(connection) -> list:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_the_migrated_schema_is_exactly_tables_py(database: Database) -> None:
    await database.migrate()
    async with database.engine.connect() as conn:
        assert await conn.run_sync(_differences) == []


async def test_migrating_again_and_concurrently_is_harmless(database_url: str) -> None:
    databases = [Database(database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(db.migrate() for db in databases))
        async with databases[0].engine.connect() as conn:
            assert await conn.run_sync(_differences) == []
    finally:
        await asyncio.gather(*(db.close() for db in databases))
