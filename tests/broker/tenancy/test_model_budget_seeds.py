"""Per-model budgets after Redis lost its data (issue #17): a per-model counter is seeded
from the spend log (its entry's window), as the overall budgets are from their rows and the
proxy-wide one from its spend, so a FLUSHDB does not hand every model_max_budget a fresh
start: not on a front door that kept running (whose copies of the keys were read before
the loss: the admission script sees the mirror's marker gone and the front door re-reads
them), nor on one started after it."""

from __future__ import annotations

import aiohttp
import pytest

from tests.broker.harness import make_config, wait_until
from tests.broker.management.conftest import MASTER, Api, general
from tests.broker.tenancy.conftest import PRICED
from tests.broker.tenancy.flushdb import chat_priced, gateway_on, private_redis
from tests.broker.test_redis_restart import PrivateRedis
from workers.db.engine import Database
from workers.testing.server import FakeUpstream

__all__ = ["private_redis"]

pytestmark = pytest.mark.slow

# One request of `priced` (output tokens at $0.0001) spends more than this.
CAP = 0.0000001


async def test_per_model_budgets_survive_a_flushdb(
    private_redis: PrivateRedis, database: Database, database_url: str, fake: FakeUpstream
) -> None:
    config = make_config(
        fake.base_url + "/v1",
        "flush-models",
        general=general(database_url),
        extra_models=PRICED.format(base=fake.base_url + "/v1"),
    )
    async with (
        gateway_on(config, private_redis.url) as gateway,
        aiohttp.ClientSession() as http,
    ):
        door = gateway.door
        api = Api(http, door.url)
        # A key's own entry (a pattern, with a window), and a team's default for each
        # member (no window: everything counts).
        window = {"pri*": {"budget_limit": CAP, "time_period": "1d"}}
        own = (await api.ok("POST", "/key/generate", {"model_max_budget": window}))["key"]
        await api.ok(
            "POST",
            "/team/new",
            {
                "team_id": "seeds",
                "team_member_model_max_budget": {"priced": CAP},
                "members_with_roles": [{"role": "user", "user_id": "seed-ann"}],
            },
        )
        member = (
            await api.ok("POST", "/key/generate", {"team_id": "seeds", "user_id": "seed-ann"})
        )["key"]
        words = {own: "model budget of key", member: "model budget of team member"}
        for key in words:
            status, text = await chat_priced(http, door.url, key)
            assert status == 200, text

            async def refused(key: str = key) -> bool:
                return (await chat_priced(http, door.url, key))[0] == 422

            await wait_until(refused, timeout_s=5.0)

        async def written() -> bool:  # the ledger has both requests' rows
            for key in words:
                status, info = await api.call("GET", "/key/info", MASTER, key=key)
                if status != 200 or not info["info"]["spend"]:
                    return False
            return True

        await wait_until(written, timeout_s=20.0)
        await gateway.redis.flushdb()
        for key, what in words.items():
            status, text = await chat_priced(http, door.url, key)
            assert status == 422 and what in text, text
        # A front door started on the empty Redis reads the spend from the database.
        later = await gateway.start_later()
        for key, what in words.items():
            status, text = await chat_priced(http, later.url, key)
            assert status == 422 and what in text, text
