"""The front door's part of tracing (issue #19), without OpenTelemetry: a span context per
API request (continuing a client's valid `traceparent`, sampling a new trace at
`sample_rate`), and a record of each span the front door sees end: the relay of a worker's
answer to the client, and the span of a request it answered itself (a cache hit, a refusal).

The records go onto the finished-request stream in batches, one XADD every
`export_interval_s`, and the callbacks' consumer makes them into spans and exports them with
the worker-made ones (workers/hooks/tracing.py). So the front door never encodes protobuf:
that encoding, in an exporter thread, held the GIL its event loop waits for at every wake-up,
which cost the loop more CPU than the encoding itself (benchmarks/HOOKS.md). And the
records wait on the stream, not in this process, while a collector is down.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

from workers.hooks.trace_context import FrontTrace, is_sampled
from workers.hooks.trace_record import new_span_id, new_trace_id
from workers.redis_streams import Keys, finished_events
from workers.settings.hooks import OtelCallback
from workers.tenancy import events
from workers.tenancy.events import FrontSpan

log = logging.getLogger("switchboard.tracing")

# Records in one stream entry: a flush after a long Redis outage is cut into entries this
# size, so that no entry is large and no XADD holds Redis for long.
MAX_BATCH = 2_000


class FrontDoorTracing:
    def __init__(self, settings: OtelCallback) -> None:
        self.sample_rate = settings.sample_rate
        self.interval_s = settings.export_interval_s
        self.keep_for_s = settings.retry_for_s
        # Oldest first, held to `max_queue` (past it the oldest go, counted and logged).
        self.pending: deque[FrontSpan] = deque()
        self.max_pending = settings.max_queue
        self.dropped_spans = 0
        self._redis: Callable[[], Redis] | None = None
        self._keys: Keys | None = None
        self._flushing = asyncio.Lock()

    def bind(self, redis: Callable[[], Redis], keys: Keys) -> None:
        """Where the records go: the front door's Redis (its current client) and stream."""
        self._redis = redis
        self._keys = keys

    # ------------------------------------------------------------------ each request

    def start(self, client_traceparent: str | None) -> FrontTrace:
        if client_traceparent is not None:
            prefix, flags = client_traceparent[:36], client_traceparent[53:]
            span_id = new_span_id()
            return FrontTrace(
                f"{prefix}{span_id}-{flags}", client_traceparent[36:52], time.time_ns()
            )
        flags = "01" if random.random() < self.sample_rate else "00"
        traceparent = f"00-{new_trace_id()}-{new_span_id()}-{flags}"
        return FrontTrace(traceparent, "", time.time_ns())

    def answered_here(self, trace: FrontTrace, route: str, status: int) -> None:
        """The span of a request no worker saw (a cache hit, a refusal before queueing)."""
        traceparent = _sampled(trace)
        if traceparent is None:
            return
        self._add(
            FrontSpan(
                traceparent=traceparent,
                start_ns=trace.start_ns,
                end_ns=time.time_ns(),
                status=status,
                route=route,
                parent_span=trace.parent_span,
                team_id=trace.team_id,
            )
        )

    def relayed(self, trace: FrontTrace, sent_bytes: int | None, end_ns: int) -> None:
        """The relay of a worker's answer ended (its last byte sent, or the client gone:
        `sent_bytes` None): from the enqueue to now, with the first byte's time."""
        traceparent = _sampled(trace)
        if traceparent is None:
            return
        self._add(
            FrontSpan(
                traceparent=traceparent,
                start_ns=trace.queued_ns or trace.start_ns,
                end_ns=end_ns,
                status=trace.relay_status or 500,
                span_id=new_span_id(),
                sent_bytes=sent_bytes,
                ttfb_ns=trace.first_byte_ns - trace.start_ns if trace.first_byte_ns else 0,
                team_id=trace.team_id,
            )
        )

    def _add(self, span: FrontSpan) -> None:
        if len(self.pending) >= self.max_pending:
            self.pending.popleft()
            self.dropped_spans += 1
        self.pending.append(span)

    # ------------------------------------------------------------------ onto the stream

    async def run(self) -> None:
        """The supervised loop: the records onto the stream every `export_interval_s`."""
        while True:
            await asyncio.sleep(self.interval_s)
            await self.flush()

    async def flush(self) -> None:
        """What is recorded, onto the stream now. Redis away: kept for the next flush (each
        record for up to `retry_for_s`, at most `max_queue` of them)."""
        async with self._flushing:
            redis, keys = self._redis, self._keys
            if redis is None or keys is None:
                return
            while self.pending:
                # Taken off first: records added while the XADD is in flight (and the cap's
                # drops they cause) touch only what is still pending.
                batch = [self.pending.popleft() for _ in range(min(MAX_BATCH, len(self.pending)))]
                try:
                    await finished_events.append_front_spans(redis(), keys, events.encode(batch))
                except BaseException as exc:
                    self.pending.extendleft(reversed(batch))
                    while len(self.pending) > self.max_pending:
                        self.pending.popleft()
                        self.dropped_spans += 1
                    if not isinstance(exc, RedisError):
                        raise
                    self._drop_kept_too_long(exc)
                    return

    def _drop_kept_too_long(self, exc: RedisError) -> None:
        cutoff_ns = time.time_ns() - int(self.keep_for_s * 1e9)
        dropped = 0
        while self.pending and self.pending[0].end_ns < cutoff_ns:
            self.pending.popleft()
            dropped += 1
        self.dropped_spans += dropped
        if dropped:
            log.warning("dropped %d spans: Redis could not take them for too long", dropped)
        log.warning("could not add %d spans to the stream: %s", len(self.pending), exc)


def _sampled(trace: FrontTrace) -> str | None:
    """The trace's traceparent when its spans are kept; None: tracing off or not sampled."""
    traceparent = trace.traceparent
    return traceparent if traceparent is not None and is_sampled(traceparent) else None
