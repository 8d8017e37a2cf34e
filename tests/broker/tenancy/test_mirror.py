"""The Redis mirror (issue #17): the request path reads keys from Redis only; a mirror
Redis lost is refilled from the database (entry by entry on first use, or whole at a
front door's start); with the database unreachable, mirrored keys keep working and only
a key Redis never had is a 503 that says why."""

from __future__ import annotations

from redis.asyncio import Redis

from tests.broker.tenancy.conftest import Gateway
from workers.db import keys as db_keys
from workers.db.engine import Database
from workers.redis_streams import Keys
from workers.tenancy import mirror


async def _drop_mirror(redis: Redis, namespace: str, gateway: Gateway) -> None:
    prefix = Keys(namespace).tenancy.mirror("", "")[: -len("::")]
    found = [key async for key in redis.scan_iter(match=prefix + "*")]
    if found:
        await redis.delete(*found)
    for door in gateway.doors:
        door.front.tenancy.forget_all()


async def test_a_lost_mirror_entry_is_refilled_from_the_database(
    gateway: Gateway, redis: Redis, namespace: str
) -> None:
    key = await gateway.new_key(rpm_limit=100)
    assert (await gateway.chat(key))[0] == 200
    await _drop_mirror(redis, namespace, gateway)
    status, body, _ = await gateway.chat(key, door=1)
    assert status == 200, body
    entry = Keys(namespace).tenancy.mirror("key", db_keys.hash_token(key))
    assert await redis.exists(entry)


async def test_a_cold_redis_is_refilled_whole_at_start(
    gateway: Gateway, redis: Redis, namespace: str
) -> None:
    keys = [await gateway.new_key() for _ in range(3)]
    await _drop_mirror(redis, namespace, gateway)
    tenancy = Keys(namespace).tenancy
    await redis.delete(tenancy.filled)
    database = gateway.doors[0].front.tenancy.database
    assert await mirror.refill(redis, tenancy, database) >= 3
    for key in keys:
        assert await redis.exists(tenancy.mirror("key", db_keys.hash_token(key)))
    assert await mirror.refill(redis, tenancy, database) == 0  # once per Redis dataset


async def test_mirrored_keys_work_while_the_database_is_unreachable(gateway: Gateway) -> None:
    key = await gateway.new_key()
    assert (await gateway.chat(key))[0] == 200
    tenancy = gateway.doors[1].front.tenancy
    database = tenancy.database
    down = Database("postgresql://postgres@127.0.0.1:1/gone")
    tenancy.database = down
    tenancy.forget_all()  # no local copy either: Redis alone answers
    try:
        status, body, _ = await gateway.chat(key, door=1)
        assert status == 200, body
        status, body, _ = await gateway.chat("sk-never-seen-0000", door=1)
        assert status == 503, body
        assert body["error"]["code"] == "database_unavailable"
    finally:
        tenancy.database = database
        await down.close()
