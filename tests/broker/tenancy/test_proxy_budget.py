"""The proxy-wide budget after Redis lost its data (issue #17): its counter is seeded from
the database, as a key's is from its row, so a FLUSHDB (or a restart without persistence)
does not hand the whole proxy a fresh budget; both for a front door that kept running and
for one that starts after the loss."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.broker.harness import make_config, start_front_door, start_worker, wait_until
from tests.broker.management.conftest import MASTER, general
from tests.broker.tenancy.conftest import HELLO, PRICED
from tests.broker.test_redis_restart import PrivateRedis
from workers.db.engine import Database
from workers.testing.server import FakeUpstream

pytestmark = pytest.mark.slow

BUDGET = "  max_budget: 0.0000001\n  budget_duration: 1d\n"  # spent by one request


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    """A Redis of this test's own: FLUSHDB on the shared one would wipe other tests'."""
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def _chat(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.post(
        url + "/v1/chat/completions",
        json={"model": "priced", "messages": HELLO},
        headers={"Authorization": f"Bearer {MASTER}"},
    ) as reply:
        return reply.status, await reply.text()


async def test_the_proxy_budget_survives_a_flushdb(
    private_redis: PrivateRedis, database: Database, database_url: str, fake: FakeUpstream
) -> None:
    config = make_config(
        fake.base_url + "/v1",
        "flush",
        general=general(database_url) + BUDGET,
        extra_models=PRICED.format(base=fake.base_url + "/v1"),
    )
    door = await start_front_door(config, private_redis.url)
    worker = await start_worker(config, private_redis.url)
    later = None
    redis = Redis.from_url(private_redis.url)
    try:
        async with aiohttp.ClientSession() as http:
            status, text = await _chat(http, door.url)
            assert status == 200, text

            async def refused() -> bool:
                return (await _chat(http, door.url))[0] == 422

            await wait_until(refused, timeout_s=5.0)
            budget = door.front.tenancy.proxy_budget
            assert budget is not None

            async def read_back() -> bool:  # the ledger wrote it, the front door read it
                return bool(budget.scope.seed_spend > 0)

            await wait_until(read_back, timeout_s=20.0)
            await redis.flushdb()
            status, text = await _chat(http, door.url)
            assert status == 422 and "the proxy" in text, text
            # A front door started on the empty Redis reads the spend before admitting.
            later = await start_front_door(config, private_redis.url)
            status, text = await _chat(http, later.url)
            assert status == 422 and "the proxy" in text, text
    finally:
        await redis.aclose()
        if later is not None:
            await later.stop()
        await worker.stop()
        await door.stop()
