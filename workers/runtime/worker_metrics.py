"""A worker process's Prometheus metrics (catalogued in docs/metrics.md) and the small HTTP
endpoint that exposes them (`switchboard worker --metrics-port`).

Routing metrics (the figures each decision read; retries, fallbacks, cooldowns) are defined
in workers/routing/routing_metrics.py and registered here.

Each process serves its own registry rather than prometheus-client's multiprocess mode:
workers run on many hosts and containers, which a shared mmap directory cannot span, and
Prometheus already sums per-process series. Per-request figures (tokens, cost, latency by
deployment) are counted once, at the front door that answers the request; a worker counts
what only it sees: its slots, reclaims, takeovers, dead letters, how long entries waited
for it, what became of streams it took over, and its routing decisions.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from workers.routing.routing_metrics import RoutingMetrics

# Queue wait: from well under a millisecond (an idle pool) to a minute (a backlog).
WAIT_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


# A dead worker noticed: from its last heartbeat to the takeover. `up` sees its own
# children exit at once; elsewhere the grace (1 s by default) and the watch's poll add up.
TAKEOVER_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class LaneChildren:
    __slots__ = ("started", "reclaimed", "taken_over", "dead_letters", "wait")

    def __init__(self, metrics: WorkerMetrics, lane: str) -> None:
        self.started = metrics.jobs_started.labels(lane)
        self.reclaimed = metrics.reclaimed.labels(lane)
        self.taken_over = metrics.taken_over.labels(lane)
        self.dead_letters = metrics.dead_letters.labels(lane)
        self.wait = metrics.queue_wait.labels(lane)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        registry = self.registry
        ProcessCollector(registry=registry)
        self.in_flight = Gauge(
            "switchboard_worker_jobs_in_flight",
            "Requests this worker is running.",
            registry=registry,
        )
        self.concurrency = Gauge(
            "switchboard_worker_concurrency",
            "Requests this worker may run at once (its slots).",
            registry=registry,
        )
        self.batch_pace = Gauge(
            "switchboard_worker_batch_lines_allowed",
            "Batch lines this worker may hold now: its batch pace, which halves while "
            "interactive requests run on a late event loop (issue #20).",
            registry=registry,
        )
        self.jobs_started = Counter(
            "switchboard_worker_jobs_started_total",
            "Request entries this worker started, new or reclaimed, per lane.",
            ["lane"],
            registry=registry,
        )
        self.reclaimed = Counter(
            "switchboard_worker_reclaimed_entries_total",
            "Entries this worker took over from a worker that stopped answering, per lane.",
            ["lane"],
            registry=registry,
        )
        self.taken_over = Counter(
            "switchboard_worker_takeovers_total",
            "Entries this worker took over, by consumer, from a worker whose heartbeat "
            "stopped (or that `up` saw exit), per lane.",
            ["lane"],
            registry=registry,
        )
        self.takeover_delay = Histogram(
            "switchboard_worker_takeover_delay_seconds",
            "Time from a dead worker's last heartbeat to this worker taking its entries over.",
            buckets=TAKEOVER_BUCKETS,
            registry=registry,
        )
        self.continuations = Counter(
            "switchboard_worker_stream_continuations_total",
            "Streams taken over after they had sent chunks, by outcome: continued, finished "
            "(only the end was missing), or why they ended with worker_lost.",
            ["model_group", "outcome"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "switchboard_worker_dead_letters_total",
            "Entries this worker moved to the dead-letter stream, per lane.",
            ["lane"],
            registry=registry,
        )
        self.queue_wait = Histogram(
            "switchboard_worker_queue_wait_seconds",
            "Time a request waited in its lane, from enqueue to a worker starting it.",
            ["lane"],
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.last_heartbeat = Gauge(
            "switchboard_worker_last_heartbeat_timestamp_seconds",
            "Unix time of this worker's last successful heartbeat.",
            registry=registry,
        )
        self.routing = RoutingMetrics(registry)
        self._lanes: dict[str, LaneChildren] = {}

    def lane(self, lane: str) -> LaneChildren:
        children = self._lanes.get(lane)
        if children is None:
            children = self._lanes[lane] = LaneChildren(self, lane)
        return children

    def continuation(self, group: str, outcome: str) -> None:
        """What became of a stream taken over after it sent chunks (runtime/continuation.py
        names the outcomes; model groups come from the config)."""
        self.continuations.labels(group, outcome).inc()

    def job_started(self, lane: str, enqueued_ms: int, *, is_reclaimed: bool) -> None:
        children = self.lane(lane)
        children.started.inc()
        if is_reclaimed:
            children.reclaimed.inc()
        else:
            # A reclaimed entry's wait would count its first worker's run time too.
            children.wait.observe(max(0.0, time.time() - enqueued_ms / 1000))


async def metrics_handler(request: web.Request) -> web.Response:
    registry: CollectorRegistry = request.app[METRICS_REGISTRY]
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


async def liveliness_handler(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


METRICS_REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
# Seconds an idle connection to the metrics port stays open. aiohttp's timer also closes a
# connection that has not sent a whole request by then, so a slow client is let go too.
METRICS_KEEPALIVE_S = 75.0


class ForwardedMetrics(Collector):
    """Another registry's metrics on this one's endpoint, its process_* left out (this
    registry has its own: the same process). The batch process (broker/batch_process.py)
    serves its runners' front-door metrics (batches, lines, spend) this way on its one port."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return [m for m in self.source.collect() if not m.name.startswith("process_")]


@contextlib.asynccontextmanager
async def metrics_endpoint(registry: CollectorRegistry, host: str, port: int) -> AsyncIterator[int]:
    """Serve GET /metrics for `registry` and GET /health/liveliness on host:port, nothing
    else; yields the bound port."""
    app = web.Application()
    app[METRICS_REGISTRY] = registry
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/health/liveliness", liveliness_handler)
    app.router.add_get("/health/liveness", liveliness_handler)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=METRICS_KEEPALIVE_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()
