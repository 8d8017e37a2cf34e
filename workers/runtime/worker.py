"""The worker: consume request entries and run them, stop those whose clients left, and
drain on shutdown. Its background loops (claims.py: renew, reclaim, dead-letter;
heartbeats.py; takeovers.py: a silent worker's entries taken over by consumer; the listener
here for cancellations and dead workers) run under a Supervisor: each outlives Redis's
errors, and if one still dies, the worker drains and stops with it.

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
from collections.abc import Mapping

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workers import envelopes, memory, redis_streams
from workers.batching import WriteBatcher
from workers.envelopes import Meta, Record, decode_envelope, decode_record
from workers.errors import ProviderError
from workers.hooks import hook_metrics
from workers.hooks.consumer import CallbackConsumer
from workers.hooks.service import ServiceHooks
from workers.log_format import REQUEST_ID
from workers.memory import MemoryReleaser
from workers.providers.media import MediaPolicy
from workers.redis_streams import Keys
from workers.routing.engine import RoutingEngine
from workers.runtime.batch_pace import BatchPace
from workers.runtime.claims import Claims
from workers.runtime.execute import Executor
from workers.runtime.heartbeats import Heartbeats
from workers.runtime.jobs import Job, ReplyWriter, now_ms
from workers.runtime.options import RuntimeOptions
from workers.runtime.takeovers import Takeovers
from workers.runtime.worker_metrics import WorkerMetrics
from workers.supervision import Loop, Supervisor

__all__ = ["Worker", "new_worker_id"]

log = logging.getLogger("switchboard.worker")

RECONNECT_DELAY_S = 0.5
# An entry that waited this long may have been cancelled while no worker was listening.
ENDED_CHECK_AFTER_MS = 1_000
# Cancellations of requests not (yet) read here: enough for a backlog's worth of clients.
REMEMBERED_CANCELLATIONS = 10_000

# Seconds an empty batch lane is not read on its own (issue #20); the idle wait covers it.
BATCH_QUIET_S = 0.1
# The longest an idle read blocks while batch lines hold their pace's every slot.
BATCH_BLOCK_MS = 20


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
        hooks: ServiceHooks | None = None,
    ) -> None:
        self.redis = redis
        # The config's callbacks (issue #19), fed by the writer, delivered by a loop below.
        self.hooks = hooks
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        self.metrics.concurrency.set(options.concurrency)
        self.options = options
        self.keys = Keys(options.namespace)
        self.worker_id = worker_id or new_worker_id()
        # Delivers the finished-request events to the callbacks: a consumer group of the
        # stream the final records feed (workers/hooks/consumer.py).
        self.callback_consumer = (
            CallbackConsumer(
                redis,
                self.keys,
                hooks,
                self.worker_id,
                stand_by_s=options.callbacks_stand_by_s,
            )
            if hooks
            else None
        )
        hook_metrics.register(self.metrics.registry, self.callback_consumer)
        self.engine = engine
        self.writer = ReplyWriter(
            redis,
            self.keys,
            reply_ttl_s=options.reply_ttl_s,
            batcher=batcher,
            max_reply_bytes=options.max_reply_bytes,
            consumer=self.worker_id,
            observer=hooks.observe if hooks is not None else None,
            call_event=hooks.finished_call if hooks is not None else None,
        )
        self.executor = Executor(
            engine,
            self.writer,
            self.worker_id,
            MediaPolicy.of(options.media_fetch),
            stream_continuation=options.stream_continuation,
            metrics=self.metrics,
            responses_ttl_s=options.responses_ttl_s,
        )
        self.memory = MemoryReleaser()
        self.jobs: dict[str, Job] = {}
        self._slot_free = asyncio.Event()
        self._slot_free.set()
        self._batch_quiet_until = 0.0
        # How many batch lines this worker may hold now (workers/runtime/batch_pace.py).
        self.batch_pace = BatchPace(
            options.concurrency,
            options.batch_max_share,
            options.batch_busy_loop_lag_ms,
            self.metrics.batch_pace,
        )
        # Requests whose clients left before this worker read them (from the cancel channel).
        self._cancelled: OrderedDict[str, None] = OrderedDict()
        self.claims = Claims(self)
        self.heartbeats = Heartbeats(
            redis,
            self.keys,
            self.worker_id,
            options,
            self.metrics,
            lambda: len(self.jobs),
            on_pause=self.claims.renew_now,
        )
        self.takeovers = Takeovers(self)
        # The background loops, and the short tasks (dead-lettering an undecodable entry).
        self.background = Supervisor(f"worker {self.worker_id}", log)

    @property
    def free_slots(self) -> int:
        return max(0, self.options.concurrency - len(self.jobs))

    # ------------------------------------------------------------------ lifecycle

    async def run(self, stopping: asyncio.Event, loops: Mapping[str, Loop] | None = None) -> None:
        """Serve until `stopping` is set, then drain. A background loop that dies (a bug, an
        error it cannot outlive) stops the worker too: it drains and raises TaskDied, so the
        process exits non-zero and is started again (by `up`, or the orchestrator) rather
        than go on consuming while invisible to live_workers or deaf to cancellations.
        `loops`: more loops to run for as long as the worker runs, watched the same way."""
        await redis_streams.ensure_groups(self.redis, self.keys, self.options.lanes)
        # Beat before reading: a consumer holding entries without a heartbeat counts as dead.
        await self.heartbeats.beat()
        # One line a person joining a worker to a running service can wait for (issue #16).
        log.info(
            "worker %s ready: lanes %s, concurrency %d",
            self.worker_id,
            ", ".join(self.options.lanes),
            self.options.concurrency,
        )
        background = self.background
        try:
            async with background:
                background.start("heartbeats", self.heartbeats.run)
                background.start("claims", self.claims.run)
                background.start("takeovers", self.takeovers.run)
                background.start("notices", self._notices)
                background.start("memory", self.memory.run)
                background.start("memory after a burst", self.memory.run_when_quiet)
                if self.options.batch_lane is not None and self.options.batch_busy_loop_lag_ms:
                    background.start("batch pace", self.batch_pace.run)
                for name, loop in (loops or {}).items():
                    background.start(name, loop)
                if self.callback_consumer is not None:
                    # A delivery loop that dies (a bug) is started again: callbacks are
                    # no reason to stop serving.
                    background.start("callbacks", self.callback_consumer.run, restart_after_s=1.0)
                try:
                    await self._serve(stopping)
                finally:
                    # Reclaims and takeovers stop first: one now would start a job the
                    # drain misses.
                    await background.stop("claims")
                    await background.stop("takeovers")
                    await self._drain()
                    await self.writer.aclose()  # batched writes already sent must land
                    if self.callback_consumer is not None:
                        await self.callback_consumer.aclose()  # deliver what is on the stream
        finally:
            # After the heartbeats stopped (closing the supervisor), so it stays forgotten.
            with contextlib.suppress(Exception):
                await self._say_goodbye()
        background.check()

    async def _say_goodbye(self) -> None:
        """Leave the heartbeats, and the consumer group if this worker holds nothing; what
        it holds (jobs the drain cancelled) is taken over at once: a consumer holding
        entries without a heartbeat is a dead one (runtime/takeovers.py)."""
        await redis_streams.forget_worker(self.redis, self.keys, self.worker_id)
        if self.callback_consumer is not None:
            await self.callback_consumer.leave()
        lanes = self.options.lanes
        if not await redis_streams.drop_consumer(self.redis, self.keys, lanes, self.worker_id):
            await redis_streams.announce_gone(self.redis, self.keys, self.worker_id)

    async def _serve(self, stopping: asyncio.Event) -> None:
        """Consume until `stopping` is set or a background loop dies."""
        consumer = asyncio.create_task(self._consume(stopping), name="consume")
        stop_waiter = asyncio.create_task(stopping.wait(), name="stop")
        death = asyncio.create_task(self.background.wait(), name="deaths")
        waiters = {consumer, stop_waiter, death}
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if consumer.done():
                consumer.result()  # a crashed consume loop is a crashed worker
            if death.done():
                log.error("stopping: %s; draining, then exiting", death.result())
        finally:
            for task in waiters:
                task.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def _drain(self) -> None:
        """Finish every job we hold (those a reclaim started too) within the drain timeout;
        what is left stays pending in Redis (never acked) and another worker reclaims it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.drain_timeout_s
        pending = self._running()
        if pending:
            log.info("draining %d in-flight requests", len(pending))
        while pending:
            _done, unfinished = await asyncio.wait(
                pending, timeout=max(0.0, deadline - loop.time())
            )
            if unfinished:
                for task in unfinished:
                    task.cancel()
                await asyncio.gather(*unfinished, return_exceptions=True)
                log.warning("left %d requests pending for other workers", len(unfinished))
                return
            pending = self._running()

    def _running(self) -> set[asyncio.Task[None]]:
        return {
            job.task for job in self.jobs.values() if job.task is not None and not job.task.done()
        }

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
                if redis_streams.is_missing_group(exc):
                    await self.recreate_groups()
                elif redis_streams.is_passing(exc):
                    log.warning("redis refused to hand out requests for now: %s", exc)
                    await asyncio.sleep(RECONNECT_DELAY_S)
                else:
                    raise
                continue
            for lane, entry, envelope in entries:
                self.start(lane, entry, envelope, is_reclaimed=False)

    async def _read(self, free: int) -> list[redis_streams.RequestEntry]:
        batch = self.options.batch_lane
        lanes = tuple(lane for lane in self.options.lanes if lane != batch)
        block = self.options.block_ms
        room = self._batch_room(free)
        if not room and batch is not None and self._batch_held():
            # Batch lines held at their pace: an idle read waits briefly, so that the next
            # line starts soon after one ends.
            block = min(block, BATCH_BLOCK_MS)
        if len(lanes) == 1 and not room:
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
        # The batch lane last, with what the interactive lanes left and the share allows.
        room = min(room, free - len(found))
        now = time.monotonic()
        if batch is not None and room > 0 and now >= self._batch_quiet_until:
            lines = await redis_streams.read_requests(
                self.redis, self.keys, self.worker_id, (batch,), room, None
            )
            # An empty batch lane is not asked again for a while (the idle wait below still
            # watches it): no round trip per pass on a service that runs no batch.
            self._batch_quiet_until = 0.0 if lines else now + BATCH_QUIET_S
            found += lines
        if not found:
            # Idle: wait on every lane at once, one entry each, on no more lanes than free
            # slots (the most urgent first; the others are read on the next pass).
            waited = (*lanes, batch) if batch is not None and room > 0 else lanes
            found = await redis_streams.read_requests(
                self.redis, self.keys, self.worker_id, waited[:free], 1, block
            )
        return found

    def _batch_room(self, free: int) -> int:
        """Batch lines this worker may start now: within its free slots and its batch pace
        (issue #20)."""
        if self.options.batch_lane is None:
            return 0
        return self.batch_pace.room(free, self._batch_held())

    def _batch_held(self) -> int:
        return sum(1 for job in self.jobs.values() if job.lane == self.options.batch_lane)

    def start(
        self,
        lane: str,
        entry: bytes,
        raw: bytes,
        *,
        is_reclaimed: bool,
        deliveries: int = 1,
        taken_from: str | None = None,
    ) -> None:
        """Run a request entry read from a lane, or reclaimed or taken over from a dead
        worker (`deliveries`: this one included; `taken_from`: that worker, if known)."""
        try:
            envelope = decode_envelope(raw)
        except msgspec.DecodeError:
            log.error("dropping undecodable entry %s on lane %s", entry, lane)
            dead_letter = self.claims.dead_letter(lane, entry, raw, "undecodable envelope", None)
            self.background.spawn(dead_letter, f"dead-letter {entry!r}")
            return
        running = self.jobs.get(envelope.request_id)
        if running is not None:
            # A second copy of a request this worker is running: its front door queued it
            # again because Redis lost its data, and the first copy's entry went with it.
            # The first copy answers, and acknowledges the entry Redis has now.
            log.info("%s was queued again while running here; keeping its run", running.request_id)
            running.lane, running.entry = lane, entry
            return
        job = Job(envelope, lane, entry, deliveries=deliveries, taken_from=taken_from)
        if lane != self.options.batch_lane:
            self.batch_pace.saw_interactive(time.monotonic())
        self.jobs[envelope.request_id] = job
        self.metrics.job_started(lane, envelope.enqueued_ms, is_reclaimed=is_reclaimed)
        self.metrics.in_flight.set(len(self.jobs))
        if not self.free_slots:
            self._slot_free.clear()
        job.task = asyncio.create_task(self._run_job(job, is_reclaimed), name=job.request_id)

    async def _run_job(self, job: Job, is_reclaimed: bool) -> None:
        REQUEST_ID.set(job.request_id)  # the job's log lines carry it (json logs)
        footprint = memory.track()
        try:
            if is_reclaimed and await self._settled_by_earlier_attempt(job):
                return
            if job.envelope.requeued and await self._answered_by_first_copy(job):
                return
            if not is_reclaimed and await self._ended_while_queued(job):
                return
            if self.hooks is not None:
                self.hooks.job_started(job.envelope, job.started_ms)
            await self.executor.run(job)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Redis failed under us: leave the entry pending; a live worker reclaims it.
            log.exception("could not finish request %s; leaving it pending", job.request_id)
        finally:
            self.jobs.pop(job.request_id, None)
            if self.hooks is not None:
                self.hooks.forget(job.request_id)
            self.metrics.in_flight.set(len(self.jobs))
            self._slot_free.set()
            self.memory.after_job(footprint)
            self.memory.note_served()

    async def _settled_by_earlier_attempt(self, job: Job) -> bool:
        """A reclaimed entry's previous worker may have got far: finished (only the ack was
        lost), written part of a large response (a re-run's pieces would be joined to the
        parts a front door already read), or streamed part of the answer (the executor
        continues it where the provider can, else ends it with worker_lost)."""
        last = await self._last_record(job)
        if last is None:
            return False
        job.seq = last.next_seq
        if last.is_final:
            await self.writer.ack_only(job)
            return True
        if last.end != envelopes.PART:
            job.resumes_stream = True
            return False
        error = ProviderError(
            f"the worker serving request {job.request_id} stopped after part of its "
            "response was written; the request was not re-run to avoid duplicated text",
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

    # ------------------------------------------------------------------ groups, cancels

    async def recreate_groups(self) -> None:
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

    def _remember_cancelled(self, request_id: str) -> None:
        self._cancelled[request_id] = None
        if len(self._cancelled) > REMEMBERED_CANCELLATIONS:
            self._cancelled.popitem(last=False)

    async def _notices(self) -> None:
        """Stop the jobs whose clients went away, and remember the ids of those not read yet;
        take over the entries of workers known dead at once. Any Redis error is outlived
        (lost, READONLY, NOPERM on the channel): subscribe again."""
        while True:
            try:
                notices = redis_streams.notices(self.redis, self.keys)
                async with contextlib.aclosing(notices) as told:
                    async for is_gone, name in told:
                        if is_gone:
                            self.takeovers.announce(name)
                        else:
                            self._cancel(name)
            except RedisError as exc:
                log.warning("cancel listener lost redis: %s", exc)
            await asyncio.sleep(RECONNECT_DELAY_S)

    def lose(self, lane: str, entries: list[bytes]) -> None:
        """Other workers took these entries over while this one was presumed dead: stop
        their jobs quietly; those workers answer (the reply's sequence fence keeps it one
        answer per request)."""
        lost = set(entries)
        stopped = [
            job
            for job in self.jobs.values()
            if job.lane == lane and job.entry in lost and not job.is_taken_over
        ]
        for job in stopped:
            job.cancel_as_taken_over()
        if stopped:
            log.warning(
                "%d requests (%s, ...) were taken over by other workers while this one was "
                "presumed dead; stopping them here",
                len(stopped),
                stopped[0].request_id,
            )

    def _cancel(self, request_id: str) -> None:
        job = self.jobs.get(request_id)
        if job is not None:
            log.info("client cancelled %s", job.request_id)
            job.cancel_for_client()
        else:
            self._remember_cancelled(request_id)
