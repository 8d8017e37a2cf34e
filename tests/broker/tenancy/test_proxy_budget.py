"""The proxy-wide budget after Redis lost its data (issue #17): its counter is seeded from
the database, as a key's is from its row, so a FLUSHDB (or a restart without persistence)
does not hand the whole proxy a fresh budget; both for a front door that kept running and
for one that starts after the loss."""

from __future__ import annotations

import aiohttp
import pytest

from tests.broker.harness import make_config, wait_until
from tests.broker.management.conftest import MASTER, general
from tests.broker.tenancy.conftest import PRICED
from tests.broker.tenancy.flushdb import chat_priced, gateway_on, private_redis
from tests.broker.test_redis_restart import PrivateRedis
from workers.db.engine import Database
from workers.testing.server import FakeUpstream

__all__ = ["private_redis"]

pytestmark = pytest.mark.slow

BUDGET = "  max_budget: 0.0000001\n  budget_duration: 1d\n"  # spent by one request


async def test_the_proxy_budget_survives_a_flushdb(
    private_redis: PrivateRedis, database: Database, database_url: str, fake: FakeUpstream
) -> None:
    config = make_config(
        fake.base_url + "/v1",
        "flush",
        general=general(database_url) + BUDGET,
        extra_models=PRICED.format(base=fake.base_url + "/v1"),
    )
    async with (
        gateway_on(config, private_redis.url) as gateway,
        aiohttp.ClientSession() as http,
    ):
        door = gateway.door
        status, text = await chat_priced(http, door.url, MASTER)
        assert status == 200, text

        async def refused() -> bool:
            return (await chat_priced(http, door.url, MASTER))[0] == 422

        await wait_until(refused, timeout_s=5.0)
        budget = door.front.tenancy.proxy_budget
        assert budget is not None

        async def read_back() -> bool:  # the ledger wrote it, the front door read it
            return bool(budget.scope.seed_spend > 0)

        await wait_until(read_back, timeout_s=20.0)
        await gateway.redis.flushdb()
        status, text = await chat_priced(http, door.url, MASTER)
        assert status == 422 and "the proxy" in text, text
        # A front door started on the empty Redis reads the spend before admitting.
        later = await gateway.start_later()
        status, text = await chat_priced(http, later.url, MASTER)
        assert status == 422 and "the proxy" in text, text
