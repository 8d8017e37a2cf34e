"""A front door with a database, a worker and the fake upstream, for the console (issue #21).
SQLite only: the console is a client of the management API, whose own suite runs on both
backends (tests/broker/management/)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.broker.harness import RunningFrontDoor, make_config, service
from tests.broker.management.conftest import MASTER, STATIC, Api, general
from tests.db_fixtures import _migrated, empty_tables
from workers.db.engine import Database
from workers.testing.server import FakeUpstream

__all__ = ["MASTER", "STATIC"]


@pytest.fixture(scope="session")
def console_database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path: Path = tmp_path_factory.mktemp("console-db") / "switchboard.db"
    url = f"sqlite:///{path}"
    _migrated(url)
    yield url


@pytest.fixture
async def console_database(console_database_url: str) -> AsyncIterator[Database]:
    db = Database(console_database_url)
    try:
        yield db
        await empty_tables(db)
    finally:
        await db.close()


@pytest.fixture
async def door(
    console_database: Database, console_database_url: str, namespace: str, fake: FakeUpstream
) -> AsyncIterator[RunningFrontDoor]:
    settings = {"api_keys": f"[{{alias: static, key: {STATIC}}}]"}
    config = make_config(
        fake.base_url + "/v1",
        namespace,
        general=general(console_database_url),
        settings=settings,
    )
    async with service(config, workers=1) as ([front], _):
        yield front


@pytest.fixture
async def api(door: RunningFrontDoor) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield Api(http, door.url)
