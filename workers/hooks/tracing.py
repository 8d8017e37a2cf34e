"""Distributed tracing with the OpenTelemetry SDK (issue #19; the `otel` extra).

One trace per request, across processes: the front door's server span (broker/tracing.py)
travels in the envelope as a W3C `traceparent`; the worker adds the time the request waited
in its queue (a span made from the envelope's enqueue time and the job's start), its job,
and the provider call, a GenAI client span (`gen_ai.*` semantic conventions) whose context
goes upstream as `traceparent`. Spans are exported by the SDK's BatchSpanProcessor over
OTLP/HTTP (its own thread: never on the request path), to any collector or to Langfuse.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from workers import envelopes
from workers.envelopes import Envelope, Record
from workers.hooks.custom_logger import CustomLogger
from workers.hooks.trace_context import UPSTREAM_TRACEPARENT
from workers.routing.figures import DeploymentFigures
from workers.routing.observer import RoutingObserver
from workers.settings.hooks import LangfuseCallback, OtelCallback

log = logging.getLogger("switchboard.tracing")

_PROPAGATOR = TraceContextTextMapPropagator()
_OPERATIONS = {envelopes.KIND_CHAT: "chat", envelopes.KIND_EMBEDDING: "embeddings"}
_NS_PER_MS = 1_000_000


def traceparent_of(span: Span) -> str:
    """The W3C traceparent of `span` (what the propagator would write, without building a
    context and a carrier per request)."""
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def context_of(traceparent: str | None) -> Context | None:
    if traceparent is None:
        return None
    return _PROPAGATOR.extract({"traceparent": traceparent})


def otlp_exporter(endpoint: str, headers: Mapping[str, str]) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint, headers=dict(headers))


def langfuse_exporter(settings: LangfuseCallback) -> SpanExporter:
    """Langfuse takes OTLP/HTTP at /api/public/otel with basic auth (public:secret key)."""
    token = base64.b64encode(f"{settings.public_key}:{settings.secret_key}".encode()).decode()
    endpoint = settings.host.rstrip("/") + "/api/public/otel/v1/traces"
    return otlp_exporter(endpoint, {"Authorization": f"Basic {token}"})


def tracer_provider(
    service_name: str,
    exporters: list[SpanExporter],
    *,
    sample_rate: float = 1.0,
    batch: bool = True,
) -> TracerProvider:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    # ParentBased: a trace the client (or the front door) sampled is sampled throughout,
    # so a request's spans are all kept or all dropped, whichever process makes them.
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBased(TraceIdRatioBased(sample_rate)),
    )
    for exporter in exporters:
        provider.add_span_processor(
            BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        )
    return provider


class _JobSpans:
    """A running job's spans; `attempt` is the provider attempt in progress, if any."""

    __slots__ = ("job", "call", "attempt")

    def __init__(self, job: Span, call: Span) -> None:
        self.job = job
        self.call = call
        self.attempt: Span | None = None


# The spans of the job the current task serves (set by job_started, read by TracedRouting).
_CURRENT: contextvars.ContextVar[_JobSpans | None] = contextvars.ContextVar(
    "switchboard_job_spans", default=None
)


class Tracing(CustomLogger):
    """A process's tracer; as the `otel` (or `langfuse`) callback it is closed with the
    other callbacks, which flushes the spans still batched."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("switchboard")
        # A running job's spans: (job, provider call), ended by its final record.
        self._jobs: dict[str, _JobSpans] = {}
        self._is_closed = False

    @classmethod
    def from_settings(cls, otel: OtelCallback | None, langfuse: LangfuseCallback | None) -> Tracing:
        exporters: list[SpanExporter] = []
        if otel is not None:
            exporters.append(otlp_exporter(otel.endpoint, otel.headers))
        if langfuse is not None:
            exporters.append(langfuse_exporter(langfuse))
        name = otel.service_name if otel is not None else "switchboard"
        rate = otel.sample_rate if otel is not None else 1.0
        return cls(tracer_provider(name, exporters, sample_rate=rate))

    # ------------------------------------------------------------------ front door

    def server_span(self, name: str, traceparent: str | None, attributes: dict[str, Any]) -> Span:
        return self.tracer.start_span(
            name, context=context_of(traceparent), kind=SpanKind.SERVER, attributes=attributes
        )

    # ------------------------------------------------------------------ worker

    def job_started(self, envelope: Envelope, started_ms: int) -> None:
        """The queue wait (already over) and the job's spans; the provider span's context
        becomes the upstream request's traceparent for the rest of this task."""
        parent = context_of(envelope.traceparent)
        operation = _OPERATIONS.get(envelope.kind, "chat")
        queued = self.tracer.start_span(
            "switchboard.queue",
            context=parent,
            start_time=envelope.enqueued_ms * _NS_PER_MS,
            attributes={"messaging.system": "redis", "switchboard.lane": envelope.lane},
        )
        queued.end(end_time=max(envelope.enqueued_ms, started_ms) * _NS_PER_MS)
        job = self.tracer.start_span(
            "switchboard.job",
            context=parent,
            start_time=started_ms * _NS_PER_MS,
            attributes={"switchboard.request_id": envelope.request_id},
        )
        call = self.tracer.start_span(
            f"{operation} {envelope.model_group}",
            context=set_span_in_context(job),
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": operation,
                "gen_ai.request.model": envelope.model_group,
            },
        )
        spans = self._jobs[envelope.request_id] = _JobSpans(job, call)
        _CURRENT.set(spans)
        UPSTREAM_TRACEPARENT.set(traceparent_of(call))

    def routing_observer(self, inner: RoutingObserver) -> RoutingObserver:
        return TracedRouting(inner, self)

    def attempt_started(self, group: str, deployment: str) -> None:
        """A provider attempt (a retry or a fallback is another): a child of the call span,
        whose context the upstream request carries."""
        spans = _CURRENT.get()
        if spans is None:
            return
        if spans.attempt is not None:  # routed again without a failure reported: over
            spans.attempt.end()
        spans.attempt = self.tracer.start_span(
            f"attempt {deployment}",
            context=set_span_in_context(spans.call),
            kind=SpanKind.CLIENT,
            attributes={"switchboard.model_group": group, "switchboard.deployment": deployment},
        )
        UPSTREAM_TRACEPARENT.set(traceparent_of(spans.attempt))

    def attempt_failed(self, error_class: str) -> None:
        spans = _CURRENT.get()
        if spans is None or spans.attempt is None:
            return
        spans.attempt.set_attribute("error.type", error_class)
        spans.attempt.set_status(Status(StatusCode.ERROR, error_class))
        spans.attempt.end()
        spans.attempt = None

    def job_finished(self, envelope: Envelope, record: Record) -> None:
        spans = self._jobs.pop(envelope.request_id, None)
        if spans is None:
            return
        job, call = spans.job, spans.call
        meta = record.meta or envelopes.Meta()
        call.set_attributes(
            {
                "gen_ai.provider.name": meta.provider,
                "gen_ai.system": meta.provider,
                "gen_ai.response.model": meta.deployment,
                "gen_ai.usage.input_tokens": meta.prompt_tokens,
                "gen_ai.usage.output_tokens": meta.completion_tokens,
                "switchboard.attempts": meta.attempts,
                "switchboard.fallbacks": meta.fallbacks,
                "switchboard.cost_usd": meta.cost_usd or 0.0,
            }
        )
        if record.end == envelopes.ERROR:
            status = Status(StatusCode.ERROR, f"status {record.status}")
            call.set_status(status)
            job.set_status(status)
            call.set_attribute("error.type", str(record.status))
        if spans.attempt is not None:
            spans.attempt.end()
        call.end()
        job.end()

    def job_abandoned(self, request_id: str) -> None:
        """A job that ended without its final record here (shutdown, taken over)."""
        spans = self._jobs.pop(request_id, None)
        if spans is not None:
            for span in (spans.attempt, spans.call, spans.job):
                if span is not None:
                    span.set_status(Status(StatusCode.ERROR, "abandoned by this worker"))
                    span.end()

    async def aclose(self) -> None:
        # Exports what is batched: blocking HTTP, so in a thread. Once: the front door's
        # tracer is closed by its middleware's owner and as a callback.
        if not self._is_closed:
            self._is_closed = True
            await asyncio.to_thread(self.provider.shutdown)


class TracedRouting:
    """The worker's routing observer, plus an attempt span per provider attempt (so retries
    and fallbacks show as children of the provider call). Cheap: it runs on the path."""

    def __init__(self, inner: RoutingObserver, tracing: Tracing) -> None:
        self.inner = inner
        self.tracing = tracing

    def figures_read(self, group: str, figures: Mapping[str, DeploymentFigures]) -> None:
        self.inner.figures_read(group, figures)

    def routed(self, group: str, deployment: str) -> None:
        self.inner.routed(group, deployment)
        self.tracing.attempt_started(group, deployment)

    def failed(self, group: str, deployment: str, error_class: str) -> None:
        self.inner.failed(group, deployment, error_class)
        self.tracing.attempt_failed(error_class)

    def retried(self, group: str, deployment: str) -> None:
        self.inner.retried(group, deployment)

    def fell_back(self, group: str, fallback: str) -> None:
        self.inner.fell_back(group, fallback)

    def cooled_down(self, group: str, deployment: str) -> None:
        self.inner.cooled_down(group, deployment)

    def fallback_skipped(self, group: str, fallback: str, reason: str) -> None:
        self.inner.fallback_skipped(group, fallback, reason)
