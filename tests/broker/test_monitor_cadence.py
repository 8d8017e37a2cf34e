"""The cluster monitor reads what admission needs (queue depths) every refresh and the
/metrics-only figures every GAUGES_EVERY-th: an idle front door's background round trips
went from 28 to 10 a second (issue #22)."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from broker.monitor import GAUGES_EVERY, REFRESH_S
from broker.monitor import TASK_NAME as MONITOR
from tests.broker.harness import make_config, service, wait_until
from workers import redis_streams
from workers.redis_streams import Keys
from workers.testing.server import FakeUpstream


async def test_depths_every_refresh_gauges_on_their_own_cadence(
    fake: FakeUpstream, namespace: str, redis: Redis
) -> None:
    config = make_config(fake.base_url + "/v1", namespace)
    keys = Keys(namespace)
    async with service(config, workers=0) as ([door], _):
        monitor = door.front.monitor
        lane = door.front.settings.lanes[0]
        await redis.zadd(keys.heartbeats, {"w-cadence": time.time()})

        # The loop brings the gauges' figures within a gauge period ...
        async def seen() -> bool:
            return bool(monitor.live_workers == ["w-cadence"])

        await wait_until(seen, GAUGES_EVERY * REFRESH_S + 2.0)
        # ... while a depths-only refresh (the loop's other three) leaves them as they were.
        await door.front.tasks.stop(MONITOR)
        await redis.zrem(keys.heartbeats, "w-cadence")
        await redis_streams.enqueue(redis, keys, lane, b"not run: no worker")
        await monitor.refresh(with_gauges=False)
        assert monitor.waiting(lane) == 1
        assert monitor.live_workers == ["w-cadence"]
        await monitor.refresh()
        assert monitor.live_workers == []
