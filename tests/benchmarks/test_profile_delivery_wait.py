"""benchmarks.profile reads a run's CPU only after the ledger and the callbacks delivered the
window's events (their work is those requests'): its wait, on a real Redis."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from benchmarks import profile
from tests.redis_helpers import REDIS_URL
from workers.redis_streams import Keys, TenancyKeys


async def test_the_wait_ends_only_once_both_groups_have_acknowledged_everything(
    redis: Redis, keys: Keys, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(profile, "FRONT_FLUSH_S", 0.0)
    stream = keys.tenancy.ledger
    groups = (TenancyKeys.LEDGER_GROUP, TenancyKeys.CALLBACKS_GROUP)
    for group in groups:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    ids = [await redis.xadd(stream, {"r": str(i)}) for i in range(3)]
    # The ledger has read (pending) but not acknowledged; the callbacks have not read.
    await redis.xreadgroup(TenancyKeys.LEDGER_GROUP, "c1", {stream: ">"})
    waiting = asyncio.create_task(profile.wait_delivered(REDIS_URL, 10.0, namespace))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await redis.xack(stream, TenancyKeys.LEDGER_GROUP, *ids)
    await asyncio.sleep(0.3)
    assert not waiting.done()  # the callbacks' unread entries still count
    await redis.xreadgroup(TenancyKeys.CALLBACKS_GROUP, "c1", {stream: ">"})
    await redis.xack(stream, TenancyKeys.CALLBACKS_GROUP, *ids)
    waited_s = await asyncio.wait_for(waiting, 5.0)
    assert 0.6 <= waited_s < 5.0


async def test_without_the_ledger_stream_there_is_nothing_to_wait_for(namespace: str) -> None:
    assert await profile.wait_delivered(REDIS_URL, 10.0, namespace) < profile.FRONT_FLUSH_S + 1
