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

The spans only the front door sees end (the relay of a worker's answer to the client,
`switchboard.relay`, and the one span of a request it answered itself: a cache hit, a
refusal) reach the same consumer as records on the same stream (workers/hooks/front_spans.py)
and are made here too (`front_span`): no process that serves requests encodes a span.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from workers import envelopes
from workers.hooks.custom_logger import CustomLogger
from workers.hooks.trace_context import is_sampled
from workers.settings.hooks import LangfuseCallback, OtelCallback
from workers.tenancy.events import CallTrace, FinishedCall, FrontSpan

_OPERATIONS = {envelopes.KIND_CHAT: "chat", envelopes.KIND_EMBEDDING: "embeddings"}
_NS_PER_MS = 1_000_000
_SCOPE = InstrumentationScope("switchboard")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_OK = Status(StatusCode.UNSET)


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


def front_span(record: FrontSpan, resource: Resource) -> ReadableSpan:
    """A span the front door saw end, from its record (workers/hooks/front_spans.py)."""
    if record.route:  # a request it answered itself
        return server_span(
            resource,
            record.traceparent,
            record.parent_span,
            record.start_ns,
            record.end_ns,
            record.route,
            record.status,
        )
    return relay_span(record, resource)


def relay_span(record: FrontSpan, resource: Resource) -> ReadableSpan:
    """The relay of a worker's answer: from the enqueue to the answer's last byte, under
    the front door's span, with the client's time to first byte, the bytes sent and the
    outcome."""
    traceparent = record.traceparent
    trace_id = int(traceparent[3:35], 16)
    status = record.status
    outcome = _relay_outcome(status)
    # The usual status (200, the front door span's) is left out: an attribute less to
    # encode for every request.
    attributes: dict[str, Any] = {"switchboard.relay.outcome": outcome}
    if status != 200:
        attributes["http.response.status_code"] = status
    if record.sent_bytes is not None:  # None: the client left before the answer was handed over
        attributes["switchboard.relay.bytes"] = record.sent_bytes
    if record.ttfb_ns:
        attributes["switchboard.relay.ttfb_ms"] = record.ttfb_ns / 1e6
    start_ns = record.start_ns
    return ReadableSpan(
        "switchboard.relay",
        context=_context(trace_id, record.span_id),
        parent=_context(trace_id, traceparent[36:52]),
        resource=resource,
        attributes=attributes,
        status=_OK if outcome in ("ok", "client_closed") else Status(StatusCode.ERROR, outcome),
        start_time=start_ns,
        end_time=max(start_ns, record.end_ns),
        instrumentation_scope=_SCOPE,
    )


def _relay_outcome(status: int) -> str:
    if status == 499:
        return "client_closed"
    if status == 504:
        return "timeout"
    return "ok" if status < 400 else "error"
