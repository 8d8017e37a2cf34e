"""Take over a dead worker's entries within about a second (issue #15).

A worker's consumer name in the group is its worker id, the member it keeps fresh in the
heartbeats set. Every heartbeat interval this loop asks which consumers hold entries
(XPENDING's summary, one round trip) and, if another does, which of them are silent:
no heartbeat for `takeover_grace_s`, by Redis's clock, or none at all (it said goodbye
holding entries, or never beat). It claims a silent consumer's entries by consumer, in one
script per lane that takes only what that consumer still holds (XPENDING for it, then
XCLAIM), up to its free slots, and runs them as reclaimed entries: a request with no
record runs again, a stream that sent chunks continues where the provider can.

`up` (and a worker stopping with entries left) publishes a dead worker's id on the gone
channel: the listener calls `announce`, and the loop takes that worker's entries at once,
without waiting for the grace.

A live worker is never robbed: its heartbeats go on however slow its requests are. A
worker whose own heartbeat Redis does not take (full, read-only, unreachable) judges no
one: others' silence then has the same cause. One that was only paused and comes back
finds the fence on its reply (workers/envelopes.py) and the renewal of its claims
(runtime/claims.py) telling it so, and stops. Reclaim after `claim_idle_ms` stays the
backstop for what this misses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workers import redis_streams

if TYPE_CHECKING:
    from workers.runtime.worker import Worker

log = logging.getLogger("switchboard.worker")

# How long an announced death is remembered: its entries are taken over well before.
ANNOUNCED_FOR_S = 30.0


class Takeovers:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.redis = worker.redis
        self.keys = worker.keys
        self.options = worker.options
        self._wake = asyncio.Event()
        # Workers known dead (announced), with the monotonic time they were announced.
        self._gone: dict[str, float] = {}

    def announce(self, worker_id: str) -> None:
        """`worker_id` is dead (its process exited): take its entries now."""
        if worker_id != self.worker.worker_id:
            self._gone[worker_id] = time.monotonic()
            self._wake.set()

    async def run(self) -> None:
        """Watch until cancelled. Redis errors are outlived: the next pass tries again."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.options.heartbeat_interval_s)
            self._wake.clear()
            try:
                await self.take_over()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                log.warning("redis unavailable while watching for dead workers: %s", exc)
            except ResponseError as exc:
                if redis_streams.is_missing_group(exc):
                    await self.worker.recreate_groups()
                else:
                    log.warning("redis refused a takeover: %s", exc)
            except RedisError as exc:
                log.warning("redis failed a takeover: %s", exc)

    async def take_over(self) -> None:
        """One pass: take what silent workers hold, as far as this worker has room."""
        worker = self.worker
        if not worker.free_slots or not worker.heartbeats.is_fresh():
            return
        lanes = self.options.lanes
        held = await redis_streams.holders(self.redis, self.keys, lanes)
        others = set().union(*held.values()) - {worker.worker_id}
        if not others:
            self._gone.clear()
            return
        now, silent = await self._silent(sorted(others))
        for name, last_beat in sorted(silent.items(), key=lambda item: item[1] or 0.0):
            taken = 0
            for lane in lanes:
                if name in held.get(lane, ()) and worker.free_slots:
                    taken += await self._take(lane, name)
            if taken:
                delay = now - last_beat if last_beat is not None else None
                if delay is not None:
                    worker.metrics.takeover_delay.observe(max(0.0, delay))
                log.warning(
                    "took over %d requests of worker %s, silent for %s",
                    taken,
                    name,
                    f"{delay:.2f}s" if delay is not None else "ever (no heartbeat)",
                )

    async def _silent(self, consumers: list[str]) -> tuple[float, dict[str, float | None]]:
        """Redis's time, and which of `consumers` are dead, with their last heartbeat."""
        grace = self.options.takeover_grace_s
        now, silent = await redis_streams.silent_workers(self.redis, self.keys, consumers, grace)
        horizon = time.monotonic() - ANNOUNCED_FOR_S
        self._gone = {name: at for name, at in self._gone.items() if at > horizon}
        announced = [name for name in consumers if name in self._gone and name not in silent]
        if announced:
            _, known = await redis_streams.silent_workers(self.redis, self.keys, announced, 0.0)
            silent.update(known)
        return now, silent

    async def _take(self, lane: str, name: str) -> int:
        """Claim what `name` holds in `lane` (up to the free slots) and run it."""
        worker = self.worker
        taken = await redis_streams.take_over(
            self.redis, self.keys, lane, name, worker.worker_id, worker.free_slots
        )
        # Deleted while pending (cancelled before it was read, on Redis 6.2): nothing to run.
        await redis_streams.ack_deleted(self.redis, self.keys, lane, taken.deleted)
        if not taken.has_more:
            self._gone.pop(name, None)
        for entry, raw, deliveries in taken.entries:
            if deliveries > self.options.max_deliveries:
                reason = f"delivered {deliveries} times"
                await worker.claims.dead_letter(lane, entry, raw, reason, deliveries)
                continue
            worker.metrics.lane(lane).taken_over.inc()
            worker.start(
                lane, entry, raw, is_reclaimed=True, deliveries=deliveries, taken_from=name
            )
        return len(taken.entries)
