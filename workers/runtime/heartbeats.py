"""A worker's liveness: every heartbeat_interval_s, its id in the heartbeats set and its
self-description (`redis_streams.WorkerInfo`) in its hash. Front doors count live workers
and their load from them; a worker without a fresh heartbeat counts as gone."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from workers import redis_streams
from workers.redis_streams import Keys, WorkerInfo
from workers.runtime.options import RuntimeOptions
from workers.runtime.worker_metrics import WorkerMetrics

log = logging.getLogger("switchboard.worker")


class Heartbeats:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        worker_id: str,
        options: RuntimeOptions,
        metrics: WorkerMetrics,
        in_flight: Callable[[], int],
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.worker_id = worker_id
        self.options = options
        self.metrics = metrics
        self.in_flight = in_flight
        self.started_s = time.time()

    def info(self) -> WorkerInfo:
        return WorkerInfo(
            pid=os.getpid(),
            host=socket.gethostname(),
            in_flight=self.in_flight(),
            concurrency=self.options.concurrency,
            started=self.started_s,
        )

    async def run(self) -> None:
        """Beat until cancelled. Any Redis error is outlived: unreachable, or refusing
        writes (OOM at maxmemory, READONLY in a failover, NOPERM): the loop must go on, or
        this worker counts as dead once Redis recovers."""
        while True:
            pipe = self.redis.pipeline(transaction=False)
            redis_streams.heartbeat(
                pipe, self.keys, self.worker_id, time.time(), self.info(), self.options.worker_ttl_s
            )
            try:
                await pipe.execute()
                self.metrics.last_heartbeat.set(time.time())
            except RedisError as exc:
                log.warning("heartbeat failed: %s", exc)
            await asyncio.sleep(self.options.heartbeat_interval_s)
