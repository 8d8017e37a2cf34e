"""A worker pool that scales to zero (KEDA) needs front doors that stay ready without a
live worker, or no request would ever queue up to wake the pool."""

from __future__ import annotations

import aiohttp

from tests.broker.harness import make_config, service
from workers.testing.server import FakeUpstream


async def test_readiness_waives_live_workers_only_when_asked(
    fake: FakeUpstream, namespace: str
) -> None:
    config = make_config(fake.base_url + "/v1", namespace)
    async with service(config, workers=0) as ([door], _), aiohttp.ClientSession() as http:
        async with http.get(door.url + "/health/readiness") as response:
            assert response.status == 503
            assert (await response.json())["live_workers"] == 0
        async with http.get(door.url + "/health/readiness?workers=optional") as response:
            assert response.status == 200
            assert await response.json() == {
                "draining": False,
                "redis": "ok",
                "live_workers": 0,
                "status": "ready",
            }
        door.front.is_draining = True
        async with http.get(door.url + "/health/readiness?workers=optional") as response:
            assert response.status == 503
