"""The worker runtime: consume request entries, run them, reclaim dead workers' entries,
renew our own claims, heartbeat, listen for cancellations, and drain on shutdown.

Backpressure: a worker reads only as many entries as it has free slots, so a burst waits in
Redis (where any worker can take it), never in one worker's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Coroutine
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workers import envelopes, memory, redis_streams
from workers.batching import WriteBatcher
from workers.envelopes import Meta, Record, decode_envelope, decode_record
from workers.errors import ProviderError, ServiceUnavailable
from workers.http import DEFAULT_MAX_REPLY_BYTES
from workers.memory import MemoryReleaser
from workers.providers.media import MediaPolicy
from workers.redis_streams import Keys
from workers.routing.engine import RoutingEngine
from workers.runtime.execute import Executor
from workers.runtime.jobs import Job, ReplyWriter, now_ms
from workers.runtime.worker_metrics import WorkerMetrics
from workers.settings.switchboard import MediaFetch

log = logging.getLogger("switchboard.worker")

RECONNECT_DELAY_S = 0.5
# An entry that waited this long may have been cancelled while no worker was listening.
ENDED_CHECK_AFTER_MS = 1_000
# Cancellations of requests not (yet) read here: enough for a backlog's worth of clients.
REMEMBERED_CANCELLATIONS = 10_000


class RuntimeOptions(msgspec.Struct, kw_only=True, frozen=True):
    namespace: str = "sb"
    lanes: tuple[str, ...] = ("default",)
    concurrency: int = 256
    block_ms: int = 1000
    claim_idle_ms: int = 15_000
    renew_interval_ms: int = 5_000
    max_deliveries: int = 3
    reply_ttl_s: int = 300
    drain_timeout_s: float = 30.0
    heartbeat_interval_s: float = 1.0
    worker_ttl_s: float = 5.0
    # switchboard_settings.max_reply_bytes: the most of one reply a worker reads and writes.
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    media_fetch: MediaFetch = msgspec.field(default_factory=MediaFetch)


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        redis: Redis,
        engine: RoutingEngine,
        options: RuntimeOptions,
        worker_id: str | None = None,
        metrics: WorkerMetrics | None = None,
        batcher: WriteBatcher | None = None,
    ) -> None:
        self.redis = redis
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.metrics.concurrency.set(options.concurrency)
        self.options = options
        self.keys = Keys(options.namespace)
        self.worker_id = worker_id or new_worker_id()
        self.engine = engine
        self.writer = ReplyWriter(
            redis,
            self.keys,
            reply_ttl_s=options.reply_ttl_s,
            batcher=batcher,
            max_reply_bytes=options.max_reply_bytes,
        )
        self.executor = Executor(
            engine, self.writer, self.worker_id, MediaPolicy.of(options.media_fetch)
        )
        self.memory = MemoryReleaser()
        self.jobs: dict[str, Job] = {}
        self._slot_free = asyncio.Event()
        self._slot_free.set()
        self._background: set[asyncio.Task[None]] = set()
        self.started_s = time.time()
        # Requests whose clients left before this worker read them (from the cancel channel).
        self._cancelled: OrderedDict[str, None] = OrderedDict()

    @property
    def free_slots(self) -> int:
        return max(0, self.options.concurrency - len(self.jobs))

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stopping: asyncio.Event) -> None:
        """Serve until `stopping` is set, then drain."""
        await redis_streams.ensure_groups(self.redis, self.keys, self.options.lanes)
        for loop in (
            self._heartbeats(),
            self._claims(),
            self._cancellations(),
            self.memory.run(),
        ):
            self._spawn(loop)
        consumer = asyncio.create_task(self._consume(stopping), name="consume")
        stop_waiter = asyncio.create_task(stopping.wait(), name="stop")
        try:
            await asyncio.wait({consumer, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
            if consumer.done():
                consumer.result()  # a crashed consume loop is a crashed worker
        finally:
            stop_waiter.cancel()
            consumer.cancel()
            await asyncio.gather(consumer, stop_waiter, return_exceptions=True)
            await self._drain()
            await self.writer.aclose()  # batched writes already sent must land
            for task in self._background:
                task.cancel()
            await asyncio.gather(*self._background, return_exceptions=True)
            with contextlib.suppress(Exception):
                await redis_streams.forget_worker(self.redis, self.keys, self.worker_id)

    async def _drain(self) -> None:
        """Finish what we hold within the drain timeout; what is left stays pending in Redis
        (never acked) and another worker reclaims it."""
        pending = [job.task for job in self.jobs.values() if job.task is not None]
        if pending:
            log.info("draining %d in-flight requests", len(pending))
            _done, unfinished = await asyncio.wait(pending, timeout=self.options.drain_timeout_s)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
            if unfinished:
                log.warning("left %d requests pending for other workers", len(unfinished))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ consuming

    async def _consume(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await self._slot_free.wait()
            try:
                entries = await self._read(self.free_slots)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                log.warning("redis unavailable while reading requests: %s", exc)
                await asyncio.sleep(RECONNECT_DELAY_S)
                continue
            except ResponseError as exc:
                if not redis_streams.is_missing_group(exc):
                    raise
                await self._recreate_groups()
                continue
            for lane, entry, envelope in entries:
                self._start(lane, entry, envelope, is_reclaimed=False)

    async def _read(self, free: int) -> list[redis_streams.RequestEntry]:
        lanes = self.options.lanes
        block = self.options.block_ms
        if len(lanes) == 1:
            return await redis_streams.read_requests(
                self.redis, self.keys, self.worker_id, lanes, free, block
            )
        # Several lanes: take from the first lanes first, never more than our free slots.
        found: list[redis_streams.RequestEntry] = []
        for lane in lanes:
            if len(found) >= free:
                break
            found += await redis_streams.read_requests(
                self.redis, self.keys, self.worker_id, (lane,), free - len(found), None
            )
        if not found:
            # Idle: wait on every lane at once, one entry each, on no more lanes than free
            # slots (the most urgent first; the others are read on the next pass).
            found = await redis_streams.read_requests(
                self.redis, self.keys, self.worker_id, lanes[:free], 1, block
            )
        return found

    def _start(self, lane: str, entry: bytes, raw: bytes, *, is_reclaimed: bool) -> None:
        try:
            envelope = decode_envelope(raw)
        except msgspec.DecodeError:
            log.error("dropping undecodable entry %s on lane %s", entry, lane)
            self._spawn(self._dead_letter(lane, entry, raw, "undecodable envelope", None))
            return
        running = self.jobs.get(envelope.request_id)
        if running is not None:
            # A second copy of a request this worker is running: its front door queued it
            # again because Redis lost its data, and the first copy's entry went with it.
            # The first copy answers, and acknowledges the entry Redis has now.
            log.info("%s was queued again while running here; keeping its run", running.request_id)
            running.lane, running.entry = lane, entry
            return
        job = Job(envelope, lane, entry)
        self.jobs[envelope.request_id] = job
        self.metrics.job_started(lane, envelope.enqueued_ms, is_reclaimed=is_reclaimed)
        self.metrics.in_flight.set(len(self.jobs))
        if not self.free_slots:
            self._slot_free.clear()
        job.task = asyncio.create_task(self._run_job(job, is_reclaimed), name=job.request_id)

    async def _run_job(self, job: Job, is_reclaimed: bool) -> None:
        footprint = memory.track()
        try:
            if is_reclaimed and await self._settled_by_earlier_attempt(job):
                return
            if job.envelope.requeued and await self._answered_by_first_copy(job):
                return
            if not is_reclaimed and await self._ended_while_queued(job):
                return
            await self.executor.run(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Redis failed under us: leave the entry pending; a live worker reclaims it.
            log.exception("could not finish request %s; leaving it pending", job.request_id)
        finally:
            self.jobs.pop(job.request_id, None)
            self.metrics.in_flight.set(len(self.jobs))
            self._slot_free.set()
            self.memory.after_job(footprint)

    async def _settled_by_earlier_attempt(self, job: Job) -> bool:
        """A reclaimed entry's previous worker may have got far: finished (only the ack was
        lost), or streamed part of the answer (a re-run would duplicate text)."""
        last = await self._last_record(job)
        if last is None:
            return False
        job.seq = last.next_seq
        if last.is_final:
            await self.writer.ack_only(job)
            return True
        # A large response's parts are a reply begun too: a re-run's pieces would be joined
        # to them by a front door that already read some.
        sent = "its response was written" if last.end == envelopes.PART else "the stream was sent"
        error = ProviderError(
            f"the worker serving request {job.request_id} stopped after part of {sent}; "
            "the request was not re-run to avoid duplicated text",
            code="worker_lost",
        )
        await self.writer.write_error(job, error, Meta(worker=self.worker_id))
        return True

    async def _last_record(self, job: Job) -> Record | None:
        """The last record of the job's reply stream, read on the shared batch."""
        (rows,) = await self.writer.batcher.write(
            lambda pipe: redis_streams.queue_last_record(pipe, self.keys, job.request_id)
        )
        if isinstance(rows, Exception):
            raise rows
        raw = redis_streams.record_of(rows)
        return decode_record(raw) if raw is not None else None

    async def _ended_while_queued(self, job: Job) -> bool:
        """Front doors leave a cancelled request's entry in its lane (see redis_streams.cancel);
        drop it unrun. Known from the cancel channel, or, for an entry that waited longer
        than a client's grace (this worker may not have been listening: scaled from zero),
        from a final record in its reply stream, read on the shared batch."""
        if job.request_id in self._cancelled:
            del self._cancelled[job.request_id]
        elif now_ms() - job.envelope.enqueued_ms < ENDED_CHECK_AFTER_MS:
            return False
        else:
            last = await self._last_record(job)
            if last is None or not last.is_final:
                return False
        log.info("%s ended before it was run (its client left); dropping it", job.request_id)
        await self.writer.ack_only(job)
        return True

    async def _answered_by_first_copy(self, job: Job) -> bool:
        """A request queued again after Redis lost its data may have been running all along:
        if its reply stream has a record, the first copy is answering it (or has)."""
        if await self._last_record(job) is None:
            return False
        log.info("%s is answered by its first copy; dropping the second", job.request_id)
        await self.writer.ack_only(job)
        return True

    # ------------------------------------------------------------------ claims

    async def _claims(self) -> None:
        """Renew our entries' idle time, and take over entries whose worker died."""
        renew_s = self.options.renew_interval_ms / 1000
        last_reclaim = 0.0
        while True:
            await asyncio.sleep(renew_s)
            try:
                await self._renew()
                if time.monotonic() - last_reclaim >= self.options.claim_idle_ms / 2000:
                    last_reclaim = time.monotonic()
                    await self._reclaim()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                log.warning("redis unavailable while renewing claims: %s", exc)
            except ResponseError as exc:
                if redis_streams.is_missing_group(exc):
                    await self._recreate_groups()
                else:
                    # READONLY (a failover), OOM...: renewing and reclaiming must go on.
                    log.warning("redis refused a claim renewal or reclaim: %s", exc)

    async def _recreate_groups(self) -> None:
        """Redis lost the consumer groups (a restart without persistence): what it held is
        gone, but the service goes on. Making the groups again lets this worker, and every
        other one, read what front doors queue from now on."""
        log.warning(
            "redis has no consumer group for the request lanes (restarted without "
            "persistence?); creating them again. Front doors queue their waiting requests "
            "again."
        )
        try:
            await redis_streams.ensure_groups(self.redis, self.keys, self.options.lanes)
        except RedisError as exc:
            log.warning("could not create the consumer groups: %s", exc)
            await asyncio.sleep(RECONNECT_DELAY_S)

    async def _renew(self) -> None:
        by_lane: dict[str, list[bytes]] = {}
        for job in self.jobs.values():
            by_lane.setdefault(job.lane, []).append(job.entry)
        for lane, entries in by_lane.items():
            await redis_streams.renew(self.redis, self.keys, lane, self.worker_id, entries)

    async def _reclaim(self) -> None:
        for lane in self.options.lanes:
            if not self.free_slots:
                return
            claimed, deleted = await redis_streams.reclaim(
                self.redis,
                self.keys,
                lane,
                self.worker_id,
                self.options.claim_idle_ms,
                self.free_slots,
            )
            if deleted:
                # Cancelled while pending (the front door deleted them): nothing to run.
                pipe = self.redis.pipeline(transaction=False)
                for entry in deleted:
                    pipe.xack(self.keys.lane(lane), redis_streams.GROUP, entry)
                await pipe.execute()
            if not claimed:
                continue
            counts = await redis_streams.delivery_counts(
                self.redis, self.keys, lane, [entry for entry, _ in claimed]
            )
            for (entry, raw), deliveries in zip(claimed, counts, strict=True):
                if deliveries > self.options.max_deliveries:
                    await self._dead_letter(
                        lane, entry, raw, f"delivered {deliveries} times", deliveries
                    )
                else:
                    log.info("reclaimed %s from lane %s (delivery %d)", entry, lane, deliveries)
                    self._start(lane, entry, raw, is_reclaimed=True)

    async def _dead_letter(
        self, lane: str, entry: bytes, raw: bytes, reason: str, deliveries: int | None
    ) -> None:
        """Park the entry in the dead-letter stream and tell the client, with the request id."""
        pipe = self.redis.pipeline(transaction=False)
        try:
            envelope = decode_envelope(raw)
        except msgspec.DecodeError:
            envelope = None
        if envelope is not None:
            last = await redis_streams.last_record(self.redis, self.keys, envelope.request_id)
            seq = decode_record(last).next_seq if last else 1
            error = ServiceUnavailable(
                f"request {envelope.request_id} failed: {reason} without finishing; "
                "it was moved to the dead-letter stream",
                code="dead_lettered",
            )
            record = envelopes.error_record(seq, error, Meta(worker=self.worker_id))
            redis_streams.append_record(
                pipe,
                self.keys,
                envelope.request_id,
                seq,
                envelopes.encode(record),
                reply_to=envelope.reply_to,
                ttl_s=self.options.reply_ttl_s,
            )
        redis_streams.dead_letter(pipe, self.keys, lane, entry, raw, reason)
        await pipe.execute()
        self.metrics.lane(lane).dead_letters.inc()
        log.error("dead-lettered %s on lane %s: %s", entry, lane, reason)

    # ------------------------------------------------------------------ liveness, cancels

    async def _heartbeats(self) -> None:
        while True:
            info = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "in_flight": len(self.jobs),
                "concurrency": self.options.concurrency,
                "started": self.started_s,
            }
            pipe = self.redis.pipeline(transaction=False)
            redis_streams.heartbeat(
                pipe, self.keys, self.worker_id, time.time(), info, self.options.worker_ttl_s
            )
            try:
                await pipe.execute()
                self.metrics.last_heartbeat.set(time.time())
            except RedisError as exc:
                # Unreachable, or refusing writes (OOM at maxmemory, READONLY in a failover):
                # the loop must live on, or this worker counts as dead once Redis recovers.
                log.warning("heartbeat failed: %s", exc)
            await asyncio.sleep(self.options.heartbeat_interval_s)

    def _remember_cancelled(self, request_id: str) -> None:
        self._cancelled[request_id] = None
        if len(self._cancelled) > REMEMBERED_CANCELLATIONS:
            self._cancelled.popitem(last=False)

    async def _cancellations(self) -> None:
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.cancel_channel)
                async for message in pubsub.listen():
                    request_id = message["data"].decode()
                    job = self.jobs.get(request_id)
                    if job is not None:
                        log.info("client cancelled %s", job.request_id)
                        job.cancel_for_client()
                    else:
                        self._remember_cancelled(request_id)
            except (RedisConnectionError, RedisTimeoutError) as exc:
                log.warning("cancel listener lost redis: %s", exc)
                await asyncio.sleep(RECONNECT_DELAY_S)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py
