"""One batch, run by the front door holding its lease: each line queued on the batch lane
as the request it names (the path chat completions takes: the key's model access, the
gateway options, the Relay's envelope), its reply collected, its output line written once.

Crash safety (issue #20): a line is queued together with a note of its request id
(redis_streams.note_batch_line, one MULTI), and written out before the note is dropped.
A runner that starts again reads the output and error files (a line is done exactly when
its custom_id is there), waits on the noted lines rather than queue them again (unless
Redis no longer has them), and queues the rest. A line running when its runner died may
run again upstream, as any request may; its output appears once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import msgspec
from redis.exceptions import RedisError

from broker.auth import Caller
from broker.batches import output
from broker.batches.endpoints import ENDPOINTS
from broker.batches.lines import parse_line, split_lines
from broker.batches.metrics import BatchMetrics
from broker.batches.records import (
    BatchError,
    BatchErrors,
    BatchRecord,
    BatchStore,
    RequestCounts,
)
from broker.body import gateway_options, max_num_retries
from broker.files.registry import FileRegistry
from broker.frontdoor import FrontDoor
from broker.relay import Relay
from workers import envelopes, redis_streams
from workers.envelopes import Record
from workers.errors import (
    QuotaExceeded,
    RateLimited,
    ServiceUnavailable,
    SwitchboardError,
)
from workers.loop_lag import LoopLag
from workers.tenancy import events as tenancy_events
from workers.tenancy.admission import Ticket

log = logging.getLogger("switchboard.batches")

# Nobody listens on this front door id: a batch line's records are read from its reply
# stream, by whichever runner holds the batch then.
REPLY_TO = "batch-runner"
POLL_S = 0.25
CHECKPOINT_S = 1.0
# After a cancel, lines already running get this long to finish and be written.
CANCEL_GRACE_S = 5.0
# Entries of the batch lane read to learn which noted lines were queued: far above what
# the runners keep there (a window per running batch).
LANE_READ_LIMIT = 200_000
# The longest a line waits at once for a key's rate limit before it looks again.
MAX_LIMIT_WAIT_S = 10.0


class Line(msgspec.Struct):
    index: int
    custom_id: str


class BatchJob:
    def __init__(
        self,
        front: FrontDoor,
        files: FileRegistry,
        batches: BatchStore,
        record: BatchRecord,
        caller: Caller,
    ) -> None:
        self.front = front
        self.redis = front.redis
        self.keys = front.keys
        self.files = files
        self.store = files.store
        self.batches = batches
        self.record = record
        self.batch = record.batch
        self.caller = caller
        self.settings = front.settings.batches
        self.endpoint = ENDPOINTS[self.batch.endpoint]
        self.in_flight: dict[str, Line] = {}  # request id -> line
        self.done: set[str] = set()  # custom_ids in the output or error file
        self._sent_ids: set[str] = set()  # custom_ids a previous run queued, still running
        self.stopping: str | None = None  # "cancelled" or "expired"
        self.last_checkpoint = 0.0
        self.cancel_checked = 0.0
        self.metrics: BatchMetrics | None = None
        self.loop_lag: LoopLag | None = None

    # ------------------------------------------------------------------ the run

    async def run(self) -> None:
        await self._recover()
        await self._start()
        async for index, line in self._input():
            if await self._should_stop():
                break
            parsed = parse_line(line, self.batch.endpoint)
            if parsed.custom_id in self.done or parsed.custom_id in self._sent_ids:
                continue
            while len(self.in_flight) >= self.settings.window and not self.stopping:
                await self._collect()
                await self._should_stop()
            if self.stopping:
                break
            if self.loop_lag is not None:
                await self.loop_lag.wait_until_idle(POLL_S)
            await self._queue(Line(index, parsed.custom_id), bytes(parsed.body))
        while self.in_flight and not await self._should_stop():
            await self._collect()
        await self._finish()

    async def _input(self) -> AsyncIterator[tuple[int, bytes]]:
        number = 0
        chunks = self.store.read_stream(self.batch.input_file_id)
        async for line in split_lines(chunks, self.front.settings.max_body_bytes):
            number += 1
            if line.strip():
                yield number, line

    async def _recover(self) -> None:
        """What a previous run of this batch left: the lines written, the lines queued."""
        self.done = await output.done_lines(self.store, self.record.output_key)
        completed = len(self.done)
        failed_ids = await output.done_lines(self.store, self.record.error_key)
        self.done |= failed_ids
        counts = self.batch.request_counts
        self.batch.request_counts = RequestCounts(counts.total, completed, len(failed_ids))
        # The cost of every line done, those finished after the last checkpoint included.
        costs = await output.line_costs(self.store, output.cost_key(self.batch.id))
        self.batch.cost_usd = sum(costs.get(custom_id, 0.0) for custom_id in self.done)
        sent = await redis_streams.sent_lines(self.redis, self.keys, self.batch.id)
        lines = await self._custom_ids(set(sent))
        lost = await self._lost(sent)
        for index, request_id in sent.items():
            custom_id = lines.get(index)
            if custom_id is None or custom_id in self.done or index in lost:
                continue  # written already, or never queued (or gone with Redis's data)
            self.in_flight[request_id] = Line(index, custom_id)
        await redis_streams.forget_lines(self.redis, self.keys, self.batch.id, sorted(lost))
        self._sent_ids = {line.custom_id for line in self.in_flight.values()}
        if self.in_flight or self.done:
            log.info(
                "batch %s resumes: %d lines done, %d still running, %d lost with Redis",
                self.batch.id,
                len(self.done),
                len(self.in_flight),
                len(lost),
            )

    async def _lost(self, sent: dict[int, str]) -> set[int]:
        """Noted lines Redis has neither queued nor answered: their runner died between
        the note and the queuing (or Redis lost them). They are queued again."""
        if not sent:
            return set()
        queued = await redis_streams.batch_lane_requests(
            self.redis, self.keys, self.settings.lane, LANE_READ_LIMIT
        )
        noted = list(sent.items())
        answered = await redis_streams.replies_exist(
            self.redis, self.keys, [request_id for _, request_id in noted]
        )
        return {
            index
            for (index, request_id), has_reply in zip(noted, answered, strict=True)
            if request_id not in queued and not has_reply
        }

    async def _custom_ids(self, indexes: set[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        if indexes:
            async for index, line in self._input():
                if index in indexes:
                    found[index] = parse_line(line, self.batch.endpoint).custom_id
        return found

    async def _start(self) -> None:
        if self.batch.status == "validating":
            self.batch.status = "in_progress"
            self.batch.in_progress_at = int(time.time())
        await self._checkpoint(force=True)

    # ------------------------------------------------------------------ lines

    async def _queue(self, line: Line, body: bytes) -> None:
        """Queue a line as its own request; wait out a key's rate limit, and write any
        other refusal (a budget spent, a model no longer allowed) as the line's result."""
        while True:
            try:
                await self._queue_once(line, body)
                return
            except RateLimited as exc:
                if isinstance(exc, QuotaExceeded) or self.stopping:
                    await self._refused(line, exc)
                    return
                # A key's rpm/tpm: the line waits its turn rather than fail.
                await asyncio.sleep(min(exc.retry_after_s or 1.0, MAX_LIMIT_WAIT_S))
                await self._should_stop()
            except ServiceUnavailable as exc:
                # Redis refused the queuing: not this line's fault. The batch pauses and
                # its runner (here or elsewhere) goes on later; the note makes the line
                # wait or go again.
                raise RedisError(exc.message) from exc
            except SwitchboardError as exc:
                await self._refused(line, exc)
                return

    async def _queue_once(self, line: Line, body: bytes) -> None:
        front = self.front
        request = self.endpoint.check(body, front.limits)
        group = front.resolve_group(request.model, self.caller)
        options = gateway_options(
            body,
            max_timeout_s=front.settings.request_timeout_s,
            max_num_retries=max_num_retries(front.config),
        )
        ticket = await front.tenancy.ticket(
            self.caller,
            call_type=self.endpoint.call_type,
            model=request.model,
            group=group,
            body_bytes=len(body),
            max_tokens=request.max_tokens,
            end_user=request.end_user,
        )
        # The interactive path's own request: the key's limits and budgets (the ticket),
        # its fallback scope, its spend, with the batch's id among the spend row's tags.
        relay = Relay(
            front,
            kind=self.endpoint.kind,
            group=group,
            lane=self.settings.lane,
            body=body,
            stream=False,
            options=options,
            caller=self.caller,
            ingress=self.endpoint.ingress,
            ticket=None if ticket is None else _tagged(ticket, self.record.parent or self.batch.id),
        )
        # A line may wait in the batch lane as long as the batch's window lasts.
        envelope = msgspec.structs.replace(
            relay.envelope, deadline_ms=self.batch.expires_at * 1000, reply_to=REPLY_TO
        )
        relay.envelope = envelope
        await redis_streams.note_batch_line(
            self.redis, self.keys, self.batch.id, line.index, relay.request_id
        )
        # The interactive path's own enqueue, admission included.
        await relay._enqueue(envelopes.encode(envelope))
        self.in_flight[relay.request_id] = line

    async def _refused(self, line: Line, exc: SwitchboardError) -> None:
        written = output.failed_line(line.custom_id, "", exc.http_status, exc.to_json())
        self.done.add(line.custom_id)
        await self._write([], [written], [line])

    async def _collect(self) -> None:
        """Write out the lines whose replies ended since the last look."""
        await asyncio.sleep(POLL_S)
        request_ids = list(self.in_flight)
        lasts = await redis_streams.last_records(self.redis, self.keys, request_ids)
        ended = [
            rid
            for rid, raw in zip(request_ids, lasts, strict=True)
            if raw is not None and envelopes.decode_record(raw).is_final
        ]
        good: list[bytes] = []
        bad: list[bytes] = []
        lines: list[Line] = []
        costs: list[tuple[str, float]] = []
        replies = await redis_streams.all_records(self.redis, self.keys, ended)
        for request_id, raws in zip(ended, replies, strict=True):
            record = _final_record(raws)
            line = self.in_flight[request_id]
            lines.append(line)
            if record.end == envelopes.CANCELLED:
                continue  # the batch was cancelled: the line did not run
            is_ok, written = output.result_line(line.custom_id, request_id, record)
            (good if is_ok else bad).append(written)
            self.done.add(line.custom_id)
            if record.meta is not None and record.meta.cost_usd:
                costs.append((line.custom_id, record.meta.cost_usd))
        if costs:
            # Before the output: a line written out always has its cost on file.
            await self.store.append(output.cost_key(self.batch.id), output.cost_lines(costs))
            self.batch.cost_usd += sum(cost for _, cost in costs)
        await self._write(good, bad, lines)
        for request_id in ended:
            del self.in_flight[request_id]

    async def _write(self, good: list[bytes], bad: list[bytes], lines: list[Line]) -> None:
        """Append, sync, then forget: a crash between leaves the line done and noted, and
        the note is ignored for a line the files already hold."""
        if good:
            await self.store.append(self.record.output_key, b"".join(good))
        if bad:
            await self.store.append(self.record.error_key, b"".join(bad))
        counts = self.batch.request_counts
        counts.completed += len(good)
        counts.failed += len(bad)
        if self.metrics is not None:
            self.metrics.completed.inc(len(good))
            self.metrics.failed.inc(len(bad))
        indexes = [line.index for line in lines]
        await redis_streams.forget_lines(self.redis, self.keys, self.batch.id, indexes)
        await self._checkpoint()

    # ------------------------------------------------------------------ stopping

    async def _should_stop(self) -> bool:
        if self.stopping is None:
            now = time.monotonic()
            if time.time() >= self.batch.expires_at:
                self.stopping = "expired"
            elif now - self.cancel_checked >= POLL_S:  # a look per pass, not per line
                self.cancel_checked = now
                asked = await redis_streams.batch_cancel_requested(
                    self.redis, self.keys, self.batch.id
                )
                if asked is not None:
                    self.stopping = "cancelled"
                    self.batch.status = "cancelling"
                    self.batch.cancelling_at = asked
                    await self._checkpoint(force=True)
        return self.stopping is not None

    async def _cancel_running(self) -> None:
        """Cancel the queued and running lines, then write what finishes within the grace."""
        ttl = int(self.front.settings.reply_ttl_s)
        request_ids = list(self.in_flight)
        lasts = await redis_streams.last_records(self.redis, self.keys, request_ids)
        for request_id, raw in zip(request_ids, lasts, strict=True):
            seq = envelopes.decode_record(raw).next_seq if raw is not None else 1
            cancelled = envelopes.encode(Record(seq=seq, end=envelopes.CANCELLED))
            await redis_streams.send_cancel(
                self.redis, self.keys, request_id, seq=seq, record=cancelled, ttl_s=ttl
            )
        deadline = time.monotonic() + CANCEL_GRACE_S
        while self.in_flight and time.monotonic() < deadline:
            await self._collect()

    async def _finish(self) -> None:
        now = int(time.time())
        if self.stopping is not None:
            await self._cancel_running()
        if self.stopping == "expired":
            await self._write_expired()
        self.batch.status = "finalizing"
        self.batch.finalizing_at = now
        await self._checkpoint(force=True)
        await output.publish_files(self.files, self.record)
        status = self.stopping or "completed"
        self.batch.status = status
        setattr(self.batch, f"{status}_at", int(time.time()))
        await self._checkpoint(force=True)
        log.info(
            "batch %s %s: %d completed, %d failed of %d",
            self.batch.id,
            status,
            self.batch.request_counts.completed,
            self.batch.request_counts.failed,
            self.batch.request_counts.total,
        )

    async def _write_expired(self) -> None:
        """Every line without a result gets one saying the window passed (OpenAI's way)."""
        message = "This request could not be executed before the completion window expired."
        bad: list[bytes] = []
        async for _index, line in self._input():
            custom_id = parse_line(line, self.batch.endpoint).custom_id
            if custom_id not in self.done:
                bad.append(output.error_line(custom_id, "batch_expired", message))
                self.done.add(custom_id)
        forgotten = list(self.in_flight.values())
        self.in_flight.clear()
        await self._write([], bad, forgotten)

    async def _checkpoint(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last_checkpoint >= CHECKPOINT_S:
            self.last_checkpoint = now
            await self.batches.put(self.record)


def _tagged(ticket: Ticket, batch_id: str) -> Ticket:
    """The ticket with `batch:<id>` among its spend event's tags, so the ledger can tell a
    batch's spend (`switchboard spend --by tag`)."""
    event = tenancy_events.decode_front(ticket.event)
    event = msgspec.structs.replace(event, tags=(*event.tags, f"batch:{batch_id}"))
    return msgspec.structs.replace(ticket, event=tenancy_events.encode(event))


def _final_record(raws: list[bytes]) -> Record:
    """A reply's final record, a large response's parts joined into it. A reply that
    expired between two reads (past reply_ttl_s) is an error line, not a line lost."""
    if not raws:
        lost = ServiceUnavailable(
            "the line's reply expired before its runner read it", code="reply_expired"
        )
        return envelopes.error_record(1, lost)
    records = [envelopes.decode_record(raw) for raw in raws]
    parts = [r.body for r in records if r.end == envelopes.PART]
    return envelopes.join_parts(parts, records[-1])


async def fail_batch(batches: BatchStore, record: BatchRecord, message: str) -> None:
    """End a batch that cannot run at all, saying why in its `errors`."""
    batch = record.batch
    batch.status = "failed"
    batch.failed_at = int(time.time())
    batch.errors = BatchErrors(data=[BatchError(code="batch_failed", message=message)])
    await batches.put(record)
