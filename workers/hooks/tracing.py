"""Distributed tracing with the OpenTelemetry SDK (issue #19; the `otel` extra).

One trace per request, across processes, with no span object made on the request's path:
the front door picks its span's id and passes it in the envelope (`traceparent`, with the
client's parent span and its start time); the worker picks the provider call's span id,
sends it upstream as `traceparent` and notes its attempts (workers/hooks/trace_record.py).
The callbacks' consumer (workers/hooks/consumer.py) reads each finished request's event
from the ledger stream and makes its spans here, from the recorded ids and times: the
front door's server span, the queue wait, the provider call (a GenAI client span with the
`gen_ai.*` semantic conventions) and, after a failure, each attempt. It hands a batch at a
time to the SDK's OTLP/HTTP exporter and acknowledges the events once the collector took
them, so a collector that is down loses nothing: the stream holds the backlog.

A request the front door answers itself (a cache hit, a refusal) has only the front door's
span, made and exported by the front door (`FrontDoorTracing`), which also makes the span
of its relay of a worker's answer to the client (`switchboard.relay`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from workers import envelopes
from workers.hooks.custom_logger import CustomLogger
from workers.hooks.trace_context import FrontTrace, is_sampled
from workers.hooks.trace_record import new_span_id, new_trace_id
from workers.settings.hooks import LangfuseCallback, OtelCallback
from workers.tenancy.events import CallTrace, FinishedCall

log = logging.getLogger("switchboard.tracing")

_OPERATIONS = {envelopes.KIND_CHAT: "chat", envelopes.KIND_EMBEDDING: "embeddings"}
_NS_PER_MS = 1_000_000
_SCOPE = InstrumentationScope("switchboard")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_OK = Status(StatusCode.UNSET)
# How long a stopping front door still retries a collector that fails (its spans are lost).
SHUTDOWN_GRACE_S = 5.0


class _Resource(Resource):
    """The SDK's Resource with its hash worked out once. The OTLP encoder groups a batch's
    spans by resource, hashing it for every span, and the SDK's hash is a JSON dump of the
    attributes: an eighth of all the encoding's CPU, for a value that never changes."""

    def __init__(self, resource: Resource) -> None:
        super().__init__(resource.attributes, resource.schema_url)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        return self is other or super().__eq__(other)


def process_resource(service_name: str) -> Resource:
    """This process's resource (service.name and the SDK's own attributes), for every span
    it makes."""
    return _Resource(Resource.create({"service.name": service_name}))


def otlp_exporter(endpoint: str, headers: Mapping[str, str]) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, headers=dict(headers))


def langfuse_exporter(settings: LangfuseCallback) -> SpanExporter:
    """Langfuse takes OTLP/HTTP at /api/public/otel with basic auth (public:secret key)."""
    token = base64.b64encode(f"{settings.public_key}:{settings.secret_key}".encode()).decode()
    endpoint = settings.host.rstrip("/") + "/api/public/otel/v1/traces"
    return otlp_exporter(endpoint, {"Authorization": f"Basic {token}"})


class SpanExport(CustomLogger):
    """A built-in (`otel`, `langfuse`, a team's `langfuse`): where spans go. The consumer
    hands it a batch of requests' spans at a time; `export` says whether the collector took
    them (the consumer retries, with backoff, until it does or gives up)."""

    def __init__(self, exporter: SpanExporter, resource: Resource) -> None:
        self.exporter = exporter
        self.resource = resource

    def export(self, spans: Sequence[ReadableSpan]) -> bool:
        """Blocking HTTP: run it in a thread."""
        return not spans or self.exporter.export(spans) == SpanExportResult.SUCCESS

    async def aclose(self) -> None:
        await asyncio.to_thread(self.exporter.shutdown)


def span_exports(
    otel: OtelCallback | None, langfuse: LangfuseCallback | None
) -> dict[str, SpanExport]:
    """The `otel` and `langfuse` built-ins a config's sections set up (by name)."""
    resource = process_resource((otel or OtelCallback()).service_name)
    exports: dict[str, SpanExport] = {}
    if otel is not None:
        exports["otel"] = SpanExport(otlp_exporter(otel.endpoint, otel.headers), resource)
    if langfuse is not None:
        exports["langfuse"] = SpanExport(langfuse_exporter(langfuse), resource)
    return exports


def _context(trace_id: int, span_hex: str) -> SpanContext:
    return SpanContext(trace_id, int(span_hex, 16), False, _SAMPLED)


def _derived_span(request_id: str, what: bytes) -> str:
    """A span id that is the same each time one request's event is made into spans (a
    redelivered event repeats ids, so a collector can tell)."""
    digest = hashlib.blake2b(request_id.encode() + what, digest_size=8).digest()
    return digest.hex() if any(digest) else "0000000000000001"


def ingress_route(call: FinishedCall) -> str:
    if call.ingress == envelopes.INGRESS_MESSAGES:
        return "/v1/messages"
    if call.ingress == envelopes.INGRESS_RESPONSES:
        return "/v1/responses"
    if call.kind == envelopes.KIND_EMBEDDING:
        return "/v1/embeddings"
    if call.kind == envelopes.KIND_TEXT_COMPLETION:
        return "/v1/completions"
    return "/v1/chat/completions"


def server_span(
    resource: Resource,
    traceparent: str,
    parent_span: str,
    start_ns: int,
    end_ns: int,
    route: str,
    status: int,
) -> ReadableSpan:
    trace_id = int(traceparent[3:35], 16)
    return ReadableSpan(
        f"POST {route}",
        context=_context(trace_id, traceparent[36:52]),
        parent=_context(trace_id, parent_span) if parent_span else None,
        resource=resource,
        attributes={
            "http.request.method": "POST",
            "http.route": route,
            "http.response.status_code": status,
        },
        kind=SpanKind.SERVER,
        status=Status(StatusCode.ERROR, f"status {status}") if status >= 500 else _OK,
        start_time=start_ns,
        end_time=max(start_ns, end_ns),
        instrumentation_scope=_SCOPE,
    )


def call_spans(request_id: str, call: FinishedCall, resource: Resource) -> list[ReadableSpan]:
    """A worker-served request's spans, from its event; none when the trace is unsampled."""
    trace = call.trace
    if trace is None or not is_sampled(trace.traceparent) or not trace.call_span:
        return []
    trace_id = int(trace.traceparent[3:35], 16)
    front = _context(trace_id, trace.traceparent[36:52])
    end_ns = call.ended_ms * _NS_PER_MS
    started_ns = call.started_ms * _NS_PER_MS
    spans = [
        server_span(
            resource,
            trace.traceparent,
            trace.parent_span,
            trace.front_start_ns or call.enqueued_ms * _NS_PER_MS,
            end_ns,
            ingress_route(call),
            call.status,
        ),
        ReadableSpan(
            "switchboard.queue",
            context=_context(trace_id, _derived_span(request_id, b"queue")),
            parent=front,
            resource=resource,
            attributes={"messaging.system": "redis", "switchboard.lane": call.lane},
            start_time=call.enqueued_ms * _NS_PER_MS,
            end_time=max(call.enqueued_ms * _NS_PER_MS, started_ns),
            instrumentation_scope=_SCOPE,
        ),
        _provider_span(request_id, call, trace, trace_id, front, resource),
    ]
    spans += _attempt_spans(trace, trace_id, resource)
    return spans


def _provider_span(
    request_id: str,
    call: FinishedCall,
    trace: CallTrace,
    trace_id: int,
    front: SpanContext,
    resource: Resource,
) -> ReadableSpan:
    operation = _OPERATIONS.get(call.kind, "chat")
    meta = call.meta or envelopes.Meta()
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": call.model_group,
        "gen_ai.provider.name": meta.provider,
        "gen_ai.response.model": meta.deployment,
        "gen_ai.usage.input_tokens": meta.prompt_tokens,
        "gen_ai.usage.output_tokens": meta.completion_tokens,
        "switchboard.request_id": request_id,
        "switchboard.cost_usd": meta.cost_usd or 0.0,
    }
    # Each attribute is a protobuf message to encode (most of tracing's CPU): the usual
    # values (one attempt, no fallback) are left out, and `gen_ai.system` (deprecated for
    # gen_ai.provider.name) too.
    if meta.attempts > 1:
        attributes["switchboard.attempts"] = meta.attempts
    if meta.fallbacks:
        attributes["switchboard.fallbacks"] = meta.fallbacks
    status = _OK
    if call.end == envelopes.ERROR:
        attributes["error.type"] = str(call.status)
        status = Status(StatusCode.ERROR, f"status {call.status}")
    started_ns = call.started_ms * _NS_PER_MS
    return ReadableSpan(
        f"{operation} {call.model_group}",
        context=_context(trace_id, trace.call_span),
        parent=front,
        resource=resource,
        attributes=attributes,
        kind=SpanKind.CLIENT,
        status=status,
        start_time=started_ns,
        end_time=max(started_ns, call.ended_ms * _NS_PER_MS),
        instrumentation_scope=_SCOPE,
    )


def _attempt_spans(trace: CallTrace, trace_id: int, resource: Resource) -> list[ReadableSpan]:
    parent = _context(trace_id, trace.call_span)
    spans = []
    for attempt in trace.attempts:
        attributes: dict[str, Any] = {
            "switchboard.model_group": attempt.group,
            "switchboard.deployment": attempt.deployment,
        }
        status = _OK
        if attempt.error:
            attributes["error.type"] = attempt.error
            status = Status(StatusCode.ERROR, attempt.error)
        spans.append(
            ReadableSpan(
                f"attempt {attempt.deployment}",
                context=_context(trace_id, attempt.span_id),
                parent=parent,
                resource=resource,
                attributes=attributes,
                kind=SpanKind.CLIENT,
                status=status,
                start_time=attempt.start_ns,
                end_time=max(attempt.start_ns, attempt.end_ns),
                instrumentation_scope=_SCOPE,
            )
        )
    return spans


class DurableExporter(SpanExporter):
    """The front door's exporter for the spans it makes itself: retries a batch the
    collector refused until it is delivered, for up to `retry_for_s`; meanwhile the batch
    processor's bounded queue holds new spans (dropping the oldest past it)."""

    MAX_PAUSE_S = 5.0

    def __init__(self, inner: SpanExporter, retry_for_s: float) -> None:
        self.inner = inner
        self.retry_for_s = retry_for_s
        self.dropped_spans = 0
        self._stop_by: float | None = None
        self._wake = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        give_up_at = time.monotonic() + self.retry_for_s
        pause_s = 0.1
        while True:
            if self.inner.export(spans) == SpanExportResult.SUCCESS:
                return SpanExportResult.SUCCESS
            now = time.monotonic()
            deadline = give_up_at if self._stop_by is None else min(give_up_at, self._stop_by)
            if now >= deadline:
                self.dropped_spans += len(spans)
                log.warning("dropped %d spans: the collector failed for too long", len(spans))
                return SpanExportResult.FAILURE
            self._wake.wait(min(pause_s, deadline - now))
            pause_s = min(pause_s * 2, self.MAX_PAUSE_S)

    def stop_retrying_after(self, grace_s: float) -> None:
        self._stop_by = time.monotonic() + grace_s
        self._wake.set()

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class FrontDoorTracing:
    """The front door's part: a span context per API request (continuing a client's valid
    traceparent, sampling a new trace at `sample_rate`), and the spans it makes itself,
    exported by the SDK's batch processor on its own thread: the span of a request it
    answered itself, and the relay of a worker's answer to the client. A request made with
    a key of a team that names its own span exports (`default_team_settings`) goes to
    those (`teams`), as the callbacks' consumer sends that team's worker-made spans."""

    def __init__(
        self,
        settings: OtelCallback,
        exports: Mapping[str, SpanExport],
        teams: Mapping[str, Mapping[str, SpanExport]] | None = None,
    ) -> None:
        self.sample_rate = settings.sample_rate
        self.resource = process_resource(settings.service_name)
        self.durable: list[DurableExporter] = []
        self.processors: list[BatchSpanProcessor] = []
        # One processor per exporter, however many teams share it.
        by_export: dict[int, BatchSpanProcessor] = {}

        def processor(export: SpanExport) -> BatchSpanProcessor:
            found = by_export.get(id(export))
            if found is None:
                durable = DurableExporter(export.exporter, settings.retry_for_s)
                found = BatchSpanProcessor(
                    durable,
                    max_queue_size=settings.max_queue,
                    schedule_delay_millis=settings.export_interval_s * 1000,
                )
                by_export[id(export)] = found
                self.durable.append(durable)
                self.processors.append(found)
            return found

        self.everyone = [processor(e) for e in exports.values()]
        self.teams = {
            team: [processor(e) for e in team_exports.values()]
            for team, team_exports in (teams or {}).items()
        }
        self._is_closed = False

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

    def _export(self, trace: FrontTrace, span: ReadableSpan) -> None:
        team = self.teams.get(trace.team_id) if trace.team_id is not None else None
        for processor in self.everyone if team is None else team:
            processor.on_end(span)

    def answered_here(self, trace: FrontTrace, route: str, status: int) -> None:
        """The span of a request no worker saw (a cache hit, a refusal before queueing)."""
        traceparent = trace.traceparent
        if traceparent is None or not is_sampled(traceparent):
            return
        span = server_span(
            self.resource,
            traceparent,
            trace.parent_span,
            trace.start_ns,
            time.time_ns(),
            route,
            status,
        )
        self._export(trace, span)

    def relayed(self, trace: FrontTrace, sent_bytes: int | None, end_ns: int) -> None:
        """The relay's span, exported: see `relay_span`."""
        span = self.relay_span(trace, sent_bytes, end_ns)
        if span is not None:
            self._export(trace, span)

    def relay_span(
        self, trace: FrontTrace, sent_bytes: int | None, end_ns: int
    ) -> ReadableSpan | None:
        """The relay's span: from the enqueue to the answer's last byte, under the front
        door's span, with the client's time to first byte, the bytes sent and the outcome;
        None when the trace is not sampled."""
        traceparent = trace.traceparent
        if traceparent is None or not is_sampled(traceparent):
            return None
        trace_id = int(traceparent[3:35], 16)
        status = trace.relay_status or 500
        outcome = _relay_outcome(status)
        first_byte_ns = trace.first_byte_ns
        # The usual status (200, the front door span's) is left out: an attribute less to
        # encode for every request.
        attributes: dict[str, Any] = {"switchboard.relay.outcome": outcome}
        if status != 200:
            attributes["http.response.status_code"] = status
        if sent_bytes is not None:  # None: the client left before the answer was handed over
            attributes["switchboard.relay.bytes"] = sent_bytes
        if first_byte_ns:
            attributes["switchboard.relay.ttfb_ms"] = (first_byte_ns - trace.start_ns) / 1e6
        start_ns = trace.queued_ns or trace.start_ns
        return ReadableSpan(
            "switchboard.relay",
            context=_context(trace_id, new_span_id()),
            parent=_context(trace_id, traceparent[36:52]),
            resource=self.resource,
            attributes=attributes,
            status=_OK if outcome in ("ok", "client_closed") else Status(StatusCode.ERROR, outcome),
            start_time=start_ns,
            end_time=max(start_ns, end_ns),
            instrumentation_scope=_SCOPE,
        )

    async def flush(self) -> None:
        """Exports what is batched now (tests, benchmarks)."""
        for processor in self.processors:
            await asyncio.to_thread(processor.force_flush)

    async def aclose(self) -> None:
        """Exports what is batched (blocking HTTP, so in a thread)."""
        if self._is_closed:
            return
        self._is_closed = True
        for exporter in self.durable:
            exporter.stop_retrying_after(SHUTDOWN_GRACE_S)
        for processor in self.processors:
            await asyncio.to_thread(processor.shutdown)


def _relay_outcome(status: int) -> str:
    if status == 499:
        return "client_closed"
    if status == 504:
        return "timeout"
    return "ok" if status < 400 else "error"
