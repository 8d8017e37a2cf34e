"""The schema: `upgrade head` on an empty database gives exactly `tables.py` (so no revision
is missing), running it again changes nothing, and processes starting together take turns."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from tests import db_servers
from workers.db import spend
from workers.db.engine import Database
from workers.db.migrations import alembic_config
from workers.db.rows import now
from workers.db.tables import daily_spend, metadata


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


async def test_revision_0002_sums_the_days_already_written_per_team_user_org_and_model(
    empty_urls: list[str],
) -> None:

    database = Database(empty_urls[0])
    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0001"))
            day = {"day": "2026-03-01", "user_id": "u1", "team_id": "t1", "organization_id": ""}
            measures = {"prompt_tokens": 1, "completion_tokens": 2, "api_requests": 1}
            counts = {"successful_requests": 1, "failed_requests": 0, "updated_at": now()}
            await conn.execute(
                sa.insert(daily_spend),
                [
                    {
                        **day,
                        "api_key": k,
                        "model_group": m,
                        "provider": "p",
                        "spend": 0.5,
                        **measures,
                        **counts,
                    }
                    for k, m in (("k1", "gpt"), ("k2", "gpt"), ("k2", "claude"))
                ],
            )
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "head"))
            window = {"first_day": "2026-03-01", "last_day": "2026-03-01"}
            by_team = await spend.totals(conn, "team", **window)
            assert [(r["group"], r["spend"], r["api_requests"]) for r in by_team] == [
                ("t1", 1.5, 3)
            ]
            by_model = await spend.totals(conn, "model", **window)
            assert [(r["group"], r["prompt_tokens"]) for r in by_model] == [
                ("gpt", 2),
                ("claude", 1),
            ]
            assert [r["group"] for r in await spend.totals(conn, "organization", **window)] == [""]
    finally:
        await database.close()


async def test_revision_0003_sums_the_days_already_written_into_key_blocks(
    empty_urls: list[str],
) -> None:
    first_day = date(2026, 1, 1)
    database = Database(empty_urls[0])
    try:
        async with database.engine.begin() as conn:
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0002"))
            common = {"user_id": "", "team_id": "", "organization_id": "", "provider": "p"}
            counts = {"successful_requests": 1, "failed_requests": 0, "updated_at": now()}
            days = [0, 1, 5, 31, 32, 63, 64, 200]
            await conn.execute(
                sa.insert(daily_spend),
                [
                    {
                        **common,
                        **counts,
                        "day": (first_day + timedelta(days=d)).isoformat(),
                        "api_key": key,
                        "model_group": model,
                        "spend": float(d + 1),
                        "prompt_tokens": 2,
                        "completion_tokens": 1,
                        "api_requests": 1,
                    }
                    for d in days
                    for key, model in (("k1", "gpt"), ("k1", "claude"), ("k2", "gpt"))
                ],
            )
            await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "head"))
            for first, last in ((0, 0), (0, 63), (1, 64), (5, 200), (32, 300)):
                window = {
                    "first_day": (first_day + timedelta(days=first)).isoformat(),
                    "last_day": (first_day + timedelta(days=last)).isoformat(),
                }
                inside = [d + 1.0 for d in days if first <= d <= last]
                found = await spend.totals(conn, "api_key", **window)
                assert [(r["group"], r["spend"]) for r in found] == [
                    ("k1", 2 * sum(inside)),
                    ("k2", sum(inside)),
                ]
    finally:
        await database.close()
