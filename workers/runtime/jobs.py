"""One request a worker holds: its envelope, where its reply stands, how to cancel it, and
how its records are written (every write is one pipelined round trip)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from workers import envelopes, redis_streams
from workers.batching import WriteBatcher
from workers.envelopes import Envelope, Meta, Record
from workers.errors import ServiceUnavailable, SwitchboardError
from workers.http import DEFAULT_MAX_REPLY_BYTES, reply_too_large
from workers.params import CONSUMED_FIELDS, GATEWAY_FIELDS
from workers.redis_streams import Keys
from workers.tenancy import settle

# A response body above this is written as several records (see workers.envelopes): small
# enough for Redis and its readers to pass without strain, large enough that a 64 MiB reply
# takes 64 round trips.
PART_BYTES = 1024 * 1024


def now_ms() -> int:
    return int(time.time() * 1000)


class Job:
    __slots__ = (
        "envelope",
        "lane",
        "entry",
        "task",
        "seq",
        "is_writing",
        "is_cancelled_by_client",
        "started_ms",
        "reply_bytes",
        "deliveries",
        "taken_from",
        "is_taken_over",
        "resumes_stream",
        "produced",
    )

    def __init__(
        self,
        envelope: Envelope,
        lane: str,
        entry: bytes,
        *,
        deliveries: int = 1,
        taken_from: str | None = None,
    ) -> None:
        self.envelope = envelope
        self.lane = lane
        self.entry = entry
        self.task: asyncio.Task[None] | None = None
        # Sequence number of the next client-visible event (see workers.envelopes).
        self.seq = 1
        self.is_writing = False
        self.is_cancelled_by_client = False
        self.started_ms = now_ms()
        # Bytes of chunks and response bodies written so far (held by Redis for reply_ttl_s).
        self.reply_bytes = 0
        # How many times the entry was handed to a worker, this time included: more than
        # once, earlier workers died holding it (or were presumed dead).
        self.deliveries = deliveries
        # The worker this one took the entry over from (runtime/takeovers.py), if known.
        self.taken_from = taken_from
        # Another worker took the entry over while this one was presumed dead: stop quietly.
        self.is_taken_over = False
        # Its reply already has chunks from an earlier worker: continue that stream.
        self.resumes_stream = False
        # What its stream's provider produced so far: the cost of a cancellation (#17).
        self.produced: settle.Produced | None = None

    @property
    def takeovers(self) -> int:
        """Earlier deliveries: workers that died (or seemed to) holding this request."""
        return max(0, self.deliveries - 1)

    @property
    def request_id(self) -> str:
        return self.envelope.request_id

    def cancel_for_client(self) -> None:
        """The client went away. A write in progress finishes first (so the reply stream's
        sequence stays known), then the job stops at its next step."""
        self.is_cancelled_by_client = True
        if not self.is_writing and self.task is not None:
            self.task.cancel()

    def cancel_as_taken_over(self) -> None:
        """Another worker holds the entry now (this one was presumed dead): stop without a
        record or an ack, after a write in progress (the fence decides that one)."""
        self.is_taken_over = True
        if not self.is_writing and self.task is not None:
            self.task.cancel()

    def remaining_s(self) -> float:
        return max(0.0, (self.envelope.deadline_ms - now_ms()) / 1000)

    def gateway_body(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the request JSON object without gateway fields, the gateway fields)."""
        body: dict[str, Any] = orjson.loads(self.envelope.body)
        options = {name: body.pop(name) for name in GATEWAY_FIELDS if name in body}
        # Consumed fields stay readable (the request Struct, `metadata` for tags) but are
        # never forwarded as they were sent.
        options.update({name: body.pop(name) for name in CONSUMED_FIELDS if name in body})
        return body, options


_DROPPED = SwitchboardError("ended without an answer from this worker")


class ReplyTaken(Exception):
    """Another writer already ended this reply at or past our sequence number: the front door
    recorded the client's cancellation, or a worker that took the entry over (we were presumed
    dead) wrote its end. Either way this job is over; writing on would splice two replies."""


class ReplyRefused(Exception):
    """Redis refused to store a record: it reached its `maxmemory` (with `noeviction`, the
    policy a queue needs, writes fail rather than evict). The job tells its client with a
    503 instead (`ReplyWriter.refused`)."""


# Told of every record once it is written: the request's envelope, when its job started
# (unix ms), the record (a large response whole, not its PARTs). workers/hooks/service.py.
RecordObserver = Callable[[Envelope, int, Record], None]
# Asked for the callbacks' event of a final record (its bytes ride the record's round trip,
# onto the finished-request stream; issue #19).
CallEventMaker = Callable[[Envelope, int, Record], bytes]


class ReplyWriter:
    """Writes a job's records; the final one goes out with the ack in the same round trip."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        *,
        reply_ttl_s: int,
        batcher: WriteBatcher | None = None,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        part_bytes: int = PART_BYTES,
        consumer: str = "",
        observer: RecordObserver | None = None,
        call_event: CallEventMaker | None = None,
    ) -> None:
        self.redis = redis
        self.call_event = call_event
        # The callbacks' view of finished requests (issue #19): after cost is settled.
        self.observer = observer
        # The writing worker's consumer name in the group (its worker id).
        self.consumer = consumer
        self.keys = keys
        self.reply_ttl_s = reply_ttl_s
        self.max_reply_bytes = max_reply_bytes
        self.part_bytes = part_bytes
        # Jobs that write in the same loop turn share one round trip (issue #5), with the
        # routing figures' admissions and releases when the worker routes on Redis.
        self.batcher = batcher if batcher is not None else WriteBatcher(redis)

    async def write(self, job: Job, record: Record) -> None:
        self._count_reply_bytes(job, record)
        whole = record
        call = b""
        if record.is_final and self.call_event is not None:
            call = self.call_event(job.envelope, job.started_ms, whole)
        if record.end == envelopes.RESPONSE and len(record.body) > self.part_bytes:
            record = await self._write_parts(job, record)
        await self._append(job, record, call=call)
        if self.observer is not None:
            self.observer(job.envelope, job.started_ms, whole)

    async def _write_parts(self, job: Job, record: Record) -> Record:
        """Write all but the last piece of a large response body as PART records, one round
        trip each (so no command carries more than a piece), and return the RESPONSE record
        that ends it. Small replies never come here: their round trips are unchanged."""
        body, step = record.body, self.part_bytes
        last = (len(body) - 1) // step * step
        for start in range(0, last, step):
            piece = Record(seq=job.seq, end=envelopes.PART, body=body[start : start + step])
            await self._append(job, piece, publish=False)
        return msgspec.structs.replace(record, seq=job.seq, body=body[last:])

    async def _append(
        self, job: Job, record: Record, *, publish: bool = True, call: bytes = b""
    ) -> None:
        final = record.is_final
        ttl = self._ttl_s(job, record)
        encoded = envelopes.encode(record)

        def build(pipe: Pipeline) -> int:
            queued = redis_streams.append_record(
                pipe,
                self.keys,
                job.request_id,
                record.seq,
                encoded,
                reply_to=job.envelope.reply_to,
                ttl_s=ttl,
                publish=publish,
            )
            if final:
                queued += redis_streams.ack(pipe, self.keys, job.lane, job.entry)
                if settle.is_needed(job.envelope, call):
                    # The real cost replaces the reservation, in the same round trip (#17).
                    event = settle.worker_event(record, now_ms(), delivered=job.reply_bytes > 0)
                    queued += settle.queue(pipe, self.keys, job.envelope, event, call)
            return queued

        job.is_writing = True
        try:
            results = await self.batcher.write(build)
        finally:
            job.is_writing = False
        if redis_streams.is_seq_taken(results[0]):
            if not final:
                await self._after_taken(job)
            raise ReplyTaken(job.request_id) from results[0]
        if redis_streams.is_out_of_memory(results[0]):
            raise ReplyRefused(job.request_id) from results[0]
        if final and job.envelope.scopes is not None:
            settle.report(job.request_id, results.pop())
        for result in results:
            if isinstance(result, Exception):
                raise result
        job.seq = record.next_seq
        if (job.is_cancelled_by_client or job.is_taken_over) and not final:
            raise asyncio.CancelledError

    def _count_reply_bytes(self, job: Job, record: Record) -> None:
        """Refuse a reply that grew past the cap. Adapters already refuse such an upstream
        body while reading it; this bounds what a translation or a long stream adds up to.
        Errors and cancellations are small and always go through."""
        size = sum(map(len, record.chunks))
        if record.end == envelopes.RESPONSE:
            size += len(record.body)
        if size and job.reply_bytes + size > self.max_reply_bytes:
            raise reply_too_large(None, None, self.max_reply_bytes)
        job.reply_bytes += size

    def _ttl_s(self, job: Job, record: Record) -> int | None:
        """Until the end, the reply lives as long as the request may still run: set once with
        the first record (the deadline does not move), then with the final one. Skipping the
        EXPIRE on the chunks between saves a command per chunk of every stream."""
        if record.is_final:
            return self.reply_ttl_s
        if record.seq == 1:
            return self.reply_ttl_s + int(job.remaining_s()) + 60
        return None

    async def write_error(self, job: Job, error: SwitchboardError, meta: Meta | None) -> None:
        await self.write(job, envelopes.error_record(job.seq, error, meta))

    async def refused(self, job: Job) -> None:
        """Redis is full and refused a record of this job: answer 503 and settle the entry
        (running it again would meet the same Redis). Redis refuses a write while its memory,
        the write's own arguments included, is past the limit, so the small error record
        usually still lands; if not, it is only published, which Redis allows at its limit:
        the waiting front door relays it live, and a resume later finds no end."""
        error = ServiceUnavailable(
            f"the gateway's Redis is full (it reached its maxmemory) and refused to store "
            f"the reply of request {job.request_id}; retry shortly",
            code="queue_unavailable",
            retry_after_s=1.0,
        )
        try:
            await self.write_error(job, error, None)
            return
        except ReplyTaken:
            return  # ended elsewhere meanwhile (cancelled, taken over): nothing to tell
        except ReplyRefused:
            pass
        encoded = envelopes.encode(envelopes.error_record(job.seq, error))
        reply_to = job.envelope.reply_to
        event = settle.worker_event(envelopes.error_record(job.seq, error), now_ms())

        def build(pipe: Pipeline) -> int:
            queued = redis_streams.publish_record(
                pipe, self.keys, job.request_id, encoded, reply_to
            )
            queued += redis_streams.ack(pipe, self.keys, job.lane, job.entry)
            # Its lease and reservation go back now, not at the sweep (#17).
            return queued + settle.queue(pipe, self.keys, job.envelope, event)

        results = await self.batcher.write(build)
        if job.envelope.scopes is not None:
            # Redis may refuse it too (full): logged; the sweep settles it at its deadline.
            settle.report(job.request_id, results.pop())
        for result in results:
            if isinstance(result, Exception):
                raise result

    async def _after_taken(self, job: Job) -> None:
        """Another writer got to this reply first. If it ended the reply (the front door's
        CANCELLED record, or a worker that took the entry over and finished), the request is
        settled: ack it. If it is still writing, it is the worker this one took the entry
        over from, alive after all (paused past the grace, then resumed): give the entry
        back to it, so its renewals keep it. Otherwise the other writer holds the entry."""
        last = await redis_streams.last_record(self.redis, self.keys, job.request_id)
        if last is None or envelopes.decode_record(last).is_final:
            await self.ack_only(job)
        elif job.taken_from is not None:
            await redis_streams.hand_back(
                self.redis, self.keys, job.lane, job.entry, self.consumer, job.taken_from
            )

    async def records(self, job: Job) -> list[Record]:
        """Every record of the job's reply so far."""
        rows = await redis_streams.read_records(self.redis, self.keys, job.request_id)
        return [envelopes.decode_record(raw) for _, raw in rows]

    async def ack_only(self, job: Job) -> None:
        """Ack an entry whose reply ended elsewhere or never will (dropped unrun); a
        reservation still open is released at no cost (a no-op once settled)."""
        event = settle.worker_event(envelopes.error_record(job.seq, _DROPPED), now_ms())

        def build(pipe: Pipeline) -> int:
            queued = redis_streams.ack(pipe, self.keys, job.lane, job.entry)
            return queued + settle.queue(pipe, self.keys, job.envelope, event)

        results = await self.batcher.write(build)
        if job.envelope.scopes is not None:
            settle.report(job.request_id, results.pop())
        for result in results:
            if isinstance(result, Exception):
                raise result

    async def aclose(self) -> None:
        """Wait for batched writes already sent (their jobs may have been cancelled)."""
        await self.batcher.aclose()
