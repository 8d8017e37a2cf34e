"""A front door with the management API on each database backend (SQLite, PostgreSQL), and
a small client for it. Tables are emptied after each test (tests/db_fixtures.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.broker.harness import RunningFrontDoor, make_config, service
from tests.db_fixtures import *  # noqa: F403  (database_url, database: both backends)
from workers.db.engine import Database

MASTER = "sk-master-management-0123"
STATIC = "sk-static-config-key-0123"
# Nothing listens here: management tests never reach a provider.
UPSTREAM = "http://127.0.0.1:9/v1"


def general(database_url: str | None) -> str:
    text = f"general_settings:\n  master_key: {MASTER}\n"
    if database_url is not None:
        text += f"  database_url: {database_url}\n"
    return text


class Api:
    """Management calls as a script would make them; answers as (status, JSON)."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url

    async def call(
        self,
        method: str,
        path: str,
        as_key: str | None = MASTER,
        body: Any = None,
        **params: Any,
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {as_key}"} if as_key else {}
        query = {k: str(v) for k, v in params.items() if v is not None}
        async with self.http.request(
            method, self.url + path, json=body, params=query, headers=headers
        ) as response:
            return response.status, await response.json(content_type=None)

    async def post(self, path: str, body: Any, as_key: str | None = MASTER) -> tuple[int, Any]:
        return await self.call("POST", path, as_key, body)

    async def get(self, path: str, as_key: str | None = MASTER, **params: Any) -> tuple[int, Any]:
        return await self.call("GET", path, as_key, **params)

    async def ok(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        status, answer = await self.call(method, path, MASTER, body, **params)
        assert status == 200, answer
        return answer


@pytest.fixture
async def door(
    database: Database, database_url: str, namespace: str
) -> AsyncIterator[RunningFrontDoor]:
    settings = {"api_keys": f"[{{alias: static, key: {STATIC}}}]"}
    config = make_config(UPSTREAM, namespace, general=general(database_url), settings=settings)
    async with service(config, workers=0) as ([front], _):
        yield front


@pytest.fixture
async def api(door: RunningFrontDoor) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as http:
        yield Api(http, door.url)
