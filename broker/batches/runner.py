"""The batch runners of one front door: find the batches that need one, take their lease,
run each (a few at a time), and keep the leases while they run.

A lease is a Redis key with an expiry (`batches.lease_s`), renewed a few times per expiry.
A front door that dies (kill -9) stops renewing: within a lease another front door (or the
same one, restarted) takes the batch and goes on from its files (broker/batches/job.py).
A runner that cannot renew in time stops its batch itself, so two never write at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

from redis.exceptions import RedisError

from broker.batches.job import BatchJob, fail_batch
from broker.batches.metrics import BatchMetrics
from broker.batches.native_poll import NativeJob
from broker.batches.parts import PartsJob
from broker.batches.records import TERMINAL, BatchStore
from broker.files.callers import caller_of
from broker.files.registry import FileRegistry
from broker.frontdoor import FrontDoor
from workers import redis_streams
from workers.loop_lag import LoopLag

log = logging.getLogger("switchboard.batches")

SCAN_INTERVAL_S = 1.0


class BatchRunner:
    def __init__(
        self,
        front: FrontDoor,
        files: FileRegistry,
        batches: BatchStore,
        *,
        is_alone: bool = False,
    ) -> None:
        self.front = front
        self.files = files
        self.batches = batches
        self.settings = front.settings.batches
        self.holder = f"{front.id}:{os.urandom(4).hex()}"
        self.running: dict[str, asyncio.Task[None]] = {}
        # Native batches among them: they wait on their provider, not on workers, so they
        # do not count against max_running (broker/batches/native_poll.py).
        self.native_ids: set[str] = set()
        self.metrics = BatchMetrics(front.metrics.registry)
        # A front door short of CPU queues no batch line (workers/loop_lag.py). A process
        # given to batches alone runs at a lower priority instead: its loop runs late by
        # design whenever interactive work has the CPU, which is no reason to stop.
        self.yields_on_lag = bool(self.settings.busy_loop_lag_ms) and not is_alone
        self.loop_lag = LoopLag(self.settings.busy_loop_lag_ms)

    async def run(self) -> None:
        if not self.yields_on_lag:
            await self._serve()
            return
        lag = asyncio.create_task(self.loop_lag.run(), name="loop lag")
        try:
            await self._serve()
        finally:
            lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag

    async def _serve(self) -> None:
        try:
            await self._reactivate()
        except (RedisError, OSError) as exc:
            log.warning("could not look for unfinished batches: %s", exc)
        while True:
            try:
                await self._scan()
            except RedisError as exc:
                log.warning("could not look for batches to run: %s", exc)
            await asyncio.sleep(SCAN_INTERVAL_S)

    async def aclose(self) -> None:
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _reactivate(self) -> None:
        """Mark every unfinished batch active again: Redis may have lost the set (a
        restart without persistence) while the records on disk say they must go on."""
        for batch_id in await self.batches.unfinished():
            await redis_streams.activate_batch(self.front.redis, self.front.keys, batch_id)

    async def _scan(self) -> None:
        redis, keys = self.front.redis, self.front.keys
        for batch_id in await redis_streams.active_batches(redis, keys):
            lane_running = len(self.running) - len(self.native_ids)
            if batch_id in self.running or lane_running >= self.settings.max_running:
                continue
            ttl_ms = int(self.settings.lease_s * 1000)
            if await redis_streams.take_lease(redis, keys, batch_id, self.holder, ttl_ms):
                task = asyncio.create_task(self._hold(batch_id), name=f"batch {batch_id}")
                self.running[batch_id] = task
                self.metrics.running.set(len(self.running))
                task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for batch_id, running in list(self.running.items()):
            if running is task:
                del self.running[batch_id]
        self.metrics.running.set(len(self.running))

    async def _hold(self, batch_id: str) -> None:
        """Run a batch while its lease renews; stop it when the lease cannot be kept."""
        job = asyncio.create_task(self._run(batch_id), name=f"batch job {batch_id}")
        keeper = asyncio.create_task(self._keep_lease(batch_id, job), name=f"lease {batch_id}")
        try:
            await asyncio.wait((job, keeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (job, keeper):
                task.cancel()
            await asyncio.gather(job, keeper, return_exceptions=True)
            with contextlib.suppress(RedisError):
                await redis_streams.release_lease(
                    self.front.redis, self.front.keys, batch_id, self.holder
                )

    async def _keep_lease(self, batch_id: str, job: asyncio.Task[None]) -> None:
        lease_s = self.settings.lease_s
        last_renewed = time.monotonic()
        while not job.done():
            await asyncio.sleep(lease_s / 4)
            try:
                held = await redis_streams.renew_lease(
                    self.front.redis,
                    self.front.keys,
                    batch_id,
                    self.holder,
                    int(lease_s * 1000),
                )
            except RedisError as exc:
                log.warning("could not renew the lease of batch %s: %s", batch_id, exc)
                held = time.monotonic() - last_renewed < lease_s / 2
            else:
                last_renewed = time.monotonic() if held else last_renewed
            if not held:
                log.warning("batch %s: lease lost; another runner takes it", batch_id)
                return

    async def _run(self, batch_id: str) -> None:
        redis, keys = self.front.redis, self.front.keys
        try:
            record = await self.batches.load(batch_id)
            if record is None or record.batch.status in TERMINAL:
                await redis_streams.end_batch(redis, keys, batch_id, self.holder)
                return
            caller = await caller_of(self.front, record.owner, record.token)
            if caller is None:
                await fail_batch(self.batches, record, "The API key that made this batch is gone.")
            elif await self.files.store.size(record.batch.input_file_id) is None:
                await fail_batch(self.batches, record, "The batch's input file was deleted.")
            elif record.parts:
                # Split by model group: its parts run as batches of their own (parts.py).
                self.native_ids.add(batch_id)
                try:
                    await PartsJob(self.front, self.files, self.batches, record).run()
                finally:
                    self.native_ids.discard(batch_id)
            elif record.native is not None:
                # The provider's own batch API runs it (broker/batches/native_poll.py).
                native = NativeJob(self.front, self.files, self.batches, record, caller)
                native.metrics = self.metrics
                self.native_ids.add(batch_id)
                try:
                    await native.run()
                finally:
                    self.native_ids.discard(batch_id)
            else:
                job = BatchJob(self.front, self.files, self.batches, record, caller)
                job.metrics = self.metrics
                if self.yields_on_lag:
                    job.loop_lag = self.loop_lag
                await job.run()
            await redis_streams.end_batch(redis, keys, batch_id, self.holder)
        except (RedisError, OSError) as exc:
            # The batch stays active: a later scan (here or elsewhere) goes on with it.
            log.warning("batch %s paused: %s", batch_id, exc)
        except Exception:
            log.exception("batch %s failed in its runner; it is retried", batch_id)
            await asyncio.sleep(self.settings.lease_s)
