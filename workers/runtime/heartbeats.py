"""A worker's liveness: every heartbeat_interval_s, its id in the heartbeats set (at Redis's
time) and its self-description (`redis_streams.WorkerInfo`) in its hash, one script call.
Front doors count live workers and their load from them; other workers take over the
entries of one silent for takeover_grace_s (runtime/takeovers.py).

A worker also learns here that it may have been presumed dead: a pause between beats
longer than the grace (SIGSTOP, a stalled host) wakes its claim renewal at once, which
finds the entries taken from it and stops their jobs (runtime/claims.py)."""

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
        on_pause: Callable[[], None] = lambda: None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.worker_id = worker_id
        self.options = options
        self.metrics = metrics
        self.in_flight = in_flight
        self.on_pause = on_pause
        self.started_s = time.time()
        # Monotonic time the last heartbeat that Redis took was sent (None: none yet).
        self.last_sent: float | None = None
        self.first_beat = asyncio.Event()

    def is_fresh(self) -> bool:
        """Whether Redis holds a heartbeat of ours younger than the takeover grace: if not,
        this worker cannot judge others silent (Redis may be refusing every worker's beats)."""
        sent = self.last_sent
        return sent is not None and time.monotonic() - sent < self.options.takeover_grace_s

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
        previous = time.monotonic()
        while True:
            await self.beat()
            await asyncio.sleep(self.options.heartbeat_interval_s)
            now = time.monotonic()
            if now - previous > self.options.takeover_grace_s + self.options.heartbeat_interval_s:
                log.warning(
                    "this worker was paused for %.1fs, past the takeover grace; its requests "
                    "may have been taken over",
                    now - previous - self.options.heartbeat_interval_s,
                )
                self.on_pause()
            previous = now

    async def beat(self) -> None:
        pipe = self.redis.pipeline(transaction=False)
        redis_streams.heartbeat(
            pipe, self.keys, self.worker_id, self.info(), self.options.worker_ttl_s
        )
        sent = time.monotonic()
        try:
            await pipe.execute()
        except RedisError as exc:
            log.warning("heartbeat failed: %s", exc)
            return
        self.last_sent = sent
        self.metrics.last_heartbeat.set(time.time())
        self.first_beat.set()
