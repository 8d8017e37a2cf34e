"""A worker process's lifecycle: open the HTTP client and Redis pool, run the Worker until
asked to stop, drain, close in reverse order."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis

from workers.deployment import Deployment
from workers.dispatch import Dispatcher
from workers.http import HttpClient
from workers.runtime import RuntimeOptions, Worker

# Blocking reads, pipelined writes and the cancel subscription each hold a connection.
REDIS_POOL_SIZE = 64


async def serve_worker(
    groups: Mapping[str, Sequence[Deployment]],
    redis_url: str,
    options: RuntimeOptions,
    *,
    num_retries: int,
    stopping: asyncio.Event,
    worker_id: str | None = None,
) -> None:
    http = HttpClient()
    redis = Redis.from_url(redis_url, max_connections=REDIS_POOL_SIZE, health_check_interval=30)
    try:
        dispatcher = Dispatcher(groups, http, num_retries=num_retries)
        worker = Worker(redis, dispatcher, options, worker_id)
        await worker.run(stopping)
    finally:
        await http.close()
        await redis.aclose()
