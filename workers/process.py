"""A worker process's lifecycle: open the HTTP client and Redis pool, run the Worker until
asked to stop, drain, close in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence

from workers.connect import connect
from workers.deployment import Deployment
from workers.dispatch import Dispatcher
from workers.http import HttpClient
from workers.metrics import WorkerMetrics, metrics_endpoint
from workers.runtime import RuntimeOptions, Worker

log = logging.getLogger("switchboard.worker")

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
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
) -> None:
    """Serve until `stopping` is set; with `metrics_port`, also GET /metrics on that port."""
    http = HttpClient()
    redis = connect(redis_url, max_connections=REDIS_POOL_SIZE)
    metrics = WorkerMetrics()
    try:
        async with contextlib.AsyncExitStack() as stack:
            if metrics_port is not None:
                port = await stack.enter_async_context(
                    metrics_endpoint(metrics.registry, metrics_host, metrics_port)
                )
                log.info("worker metrics on http://%s:%d/metrics", metrics_host, port)
            dispatcher = Dispatcher(groups, http, num_retries=num_retries)
            worker = Worker(redis, dispatcher, options, worker_id, metrics)
            await worker.run(stopping)
    finally:
        await http.close()
        await redis.aclose()
