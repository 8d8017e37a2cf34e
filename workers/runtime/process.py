"""A worker process's lifecycle: open the HTTP client and Redis pool, run the Worker (and
the renewal of its routing liveness) until asked to stop, drain, close in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from workers.batching import WriteBatcher
from workers.connect import connect
from workers.hooks.service import ServiceHooks
from workers.http import HttpClient
from workers.redis_streams import Keys
from workers.routing.engine import RoutingEngine
from workers.routing.observer import RoutingObserver
from workers.routing.plan import RoutingPlan
from workers.routing.redis_store import RedisFigures
from workers.runtime.options import RuntimeOptions
from workers.runtime.worker import Worker, new_worker_id
from workers.runtime.worker_metrics import ForwardedMetrics, WorkerMetrics, metrics_endpoint

log = logging.getLogger("switchboard.worker")

# Blocking reads, pipelined writes and the cancel subscription each hold a connection.
REDIS_POOL_SIZE = 64


def routed_worker(
    redis: Redis,
    http: HttpClient,
    plan: RoutingPlan,
    options: RuntimeOptions,
    worker_id: str | None = None,
    metrics: WorkerMetrics | None = None,
    hooks: ServiceHooks | None = None,
) -> tuple[Worker, RedisFigures]:
    """A Worker whose routing reads and writes the cluster's live figures in Redis."""
    worker_id = worker_id or new_worker_id()
    metrics = metrics if metrics is not None else WorkerMetrics()
    # Routing's admissions and releases ride the reply writes' round trips.
    batcher = WriteBatcher(redis)
    figures = RedisFigures(
        redis,
        Keys(options.namespace),
        worker_id,
        owner_ttl_s=options.worker_ttl_s,
        stats_ttl_s=plan.settings.routing_strategy_args.ttl,
        batcher=batcher,
    )
    observer: RoutingObserver = metrics.routing
    if hooks is not None and hooks.traces is not None:
        # Each provider attempt (retries, fallbacks) is noted for its span (issue #19).
        observer = hooks.traces.routing_observer(observer)
        # ... and its span's traceparent goes upstream with it.
        http.sends_traceparent = True
    engine = RoutingEngine(plan, http, figures, observer=observer)
    return Worker(redis, engine, options, worker_id, metrics, batcher, hooks), figures


async def run_routed_worker(
    worker: Worker, figures: RedisFigures, plan: RoutingPlan, stopping: asyncio.Event
) -> None:
    """Run the worker; its in-flight accounting stays alive exactly as long as it runs (the
    renewal is one of the worker's supervised loops: if it dies, the worker stops)."""
    interval_s = worker.options.heartbeat_interval_s

    async def keep_alive() -> None:
        await figures.keep_alive(plan.groups, interval_s)

    try:
        await worker.run(stopping, {"routing liveness": keep_alive})
    finally:
        await worker.engine.aclose()
        await figures.aclose()


async def serve_worker(
    plan: RoutingPlan,
    redis_url: str,
    options: RuntimeOptions,
    *,
    stopping: asyncio.Event,
    worker_id: str | None = None,
    metrics_host: str = "127.0.0.1",
    metrics_port: int | None = None,
    hooks: ServiceHooks | None = None,
    also_served: CollectorRegistry | None = None,
) -> None:
    """Serve until `stopping` is set; with `metrics_port`, also GET /metrics on that port
    (with `also_served`'s metrics too, its process_* aside: this registry has them);
    with `hooks`, the config's callbacks get every finished request."""
    http = HttpClient(max_reply_bytes=options.max_reply_bytes)
    redis = connect(redis_url, max_connections=REDIS_POOL_SIZE)
    metrics = WorkerMetrics()
    if also_served is not None:
        metrics.registry.register(ForwardedMetrics(also_served))
    try:
        async with contextlib.AsyncExitStack() as stack:
            if metrics_port is not None:
                port = await stack.enter_async_context(
                    metrics_endpoint(metrics.registry, metrics_host, metrics_port)
                )
                log.info("worker metrics on http://%s:%d/metrics", metrics_host, port)
            worker, figures = routed_worker(redis, http, plan, options, worker_id, metrics, hooks)
            await run_routed_worker(worker, figures, plan, stopping)
    finally:
        await http.close()
        await redis.aclose()
