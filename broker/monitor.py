"""Cluster figures a front door keeps fresh in the background: queue depth and pending
per lane, live workers and their load. Admission reads them without a round trip.

The refresh loop runs under the front door's `Supervisor`: a Redis error skips one refresh;
if the loop ends all the same, the front door reports not ready and stops, since admission
would otherwise go on with figures that no longer move (broker/frontdoor.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker.frontdoor_metrics import FrontDoorMetrics
from workers import redis_streams
from workers.redis_streams import Keys
from workers.routing.figures import read_figures
from workers.routing.routing_metrics import FigureFamilies, FigureGauges
from workers.supervision import Supervisor

log = logging.getLogger("switchboard.monitor")

REFRESH_S = 0.25
# Admission reads the queue depths, so they are read every refresh; the rest (waits, live
# workers and their load, dead letters, routing figures) only feed /metrics, so every
# GAUGES_EVERY-th refresh (once a second) is enough: 10 round trips a second instead of 28,
# per front door, idle or not (issue #22: an idle front door used 15 ms of CPU a second).
GAUGES_EVERY = 4
# The refresh loop's name in its owner's Supervisor (readiness shows it if it dies).
TASK_NAME = "cluster monitor"


class ClusterMonitor:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        lanes: Sequence[str],
        metrics: FrontDoorMetrics,
        *,
        worker_ttl_s: float,
        deployments: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.lanes = tuple(lanes)
        self.metrics = metrics
        self.worker_ttl_s = worker_ttl_s
        self.depths: dict[str, tuple[int, int]] = {lane: (0, 0) for lane in self.lanes}
        self.live_workers: list[str] = []
        self.drain_per_s = 0.0
        self._gauges = {
            lane: (metrics.queue_depth.labels(lane), metrics.queue_pending.labels(lane))
            for lane in self.lanes
        }
        self._wait_gauges = {lane: metrics.queue_oldest_wait.labels(lane) for lane in self.lanes}
        # Model group -> deployment names whose routing figures /metrics shows.
        self.deployments = {group: list(names) for group, names in (deployments or {}).items()}
        families = FigureFamilies(
            metrics.deployment_in_flight,
            metrics.deployment_cooldown,
            metrics.deployment_ttft,
            metrics.deployment_latency_per_token,
            metrics.deployment_rpm_used,
            metrics.deployment_tpm_used,
            metrics.deployment_minute_failures,
        )
        self._routing_gauges = {
            (group, name): FigureGauges(families, group, name)
            for group, names in self.deployments.items()
            for name in names
        }

    async def start(self, tasks: Supervisor) -> None:
        """A first refresh, then the loop, as `tasks`' (which stops it)."""
        await self.refresh()
        tasks.start(TASK_NAME, self._run)

    async def _run(self) -> None:
        refreshes = 0
        while True:
            await asyncio.sleep(REFRESH_S)
            refreshes += 1
            try:
                await self.refresh(with_gauges=refreshes % GAUGES_EVERY == 0)
            except RedisError as exc:
                log.warning("cannot read cluster figures: %s", exc)

    async def refresh(self, *, with_gauges: bool = True) -> None:
        """The queue depths; `with_gauges`, also every figure only /metrics shows."""
        now = time.time()
        self.depths = await redis_streams.queue_depths(self.redis, self.keys, self.lanes)
        for lane, (waiting, held) in self.depths.items():
            depth_gauge, pending_gauge = self._gauges[lane]
            depth_gauge.set(waiting)
            pending_gauge.set(held)
        if with_gauges:
            await self._refresh_gauges(now)

    async def _refresh_gauges(self, now: float) -> None:
        waits = await redis_streams.queue_waits(self.redis, self.keys, self.lanes)
        for lane, wait_s in waits.items():
            self._wait_gauges[lane].set(wait_s)
        self.live_workers = await redis_streams.live_workers(
            self.redis, self.keys, now, self.worker_ttl_s
        )
        self.metrics.live_workers.set(len(self.live_workers))
        self.metrics.dead_letters.set(await redis_streams.dead_letter_length(self.redis, self.keys))
        await self._worker_load(now)
        await self._routing_figures()

    async def _worker_load(self, now: float) -> None:
        if not self.live_workers:
            self.metrics.workers_in_flight.set(0)
            self.metrics.workers_capacity.set(0)
            return
        infos, freshest = await redis_streams.worker_infos(self.redis, self.keys, self.live_workers)
        self.metrics.workers_in_flight.set(sum(info.in_flight for info in infos))
        self.metrics.workers_capacity.set(sum(info.concurrency for info in infos))
        if freshest is not None:
            self.metrics.last_heartbeat_age.set(max(0.0, now - freshest))

    async def _routing_figures(self) -> None:
        if not self.deployments:
            return
        figures = await read_figures(self.redis, self.keys, self.deployments)
        for (group, name), gauges in self._routing_gauges.items():
            gauges.set(figures.get(group, name))

    def waiting(self, lane: str) -> int:
        return self.depths.get(lane, (0, 0))[0]
