"""A worker's record of each job's trace (issue #19), without OpenTelemetry: ids and times.

On the request's path the worker only picks a span id for the provider call (its context is
the upstream request's `traceparent`) and notes when each attempt began and how it ended.
The final record carries this `CallTrace` in the callbacks' event on the ledger stream; the
callbacks' consumer makes the spans from it (workers/hooks/spans.py), batched, off the path.
A request served at once costs a random number and two small objects.
"""

from __future__ import annotations

import contextvars
import random
import time
from collections.abc import Mapping

from workers.envelopes import Envelope
from workers.hooks.trace_context import UPSTREAM_TRACEPARENT
from workers.routing.figures import DeploymentFigures
from workers.routing.observer import RoutingObserver
from workers.tenancy.events import AttemptTrace, CallTrace


def new_span_id() -> str:
    """16 hex digits, never all zeros (W3C)."""
    return f"{random.getrandbits(64) or 1:016x}"


def new_trace_id() -> str:
    return f"{random.getrandbits(128) or 1:032x}"


class _Job:
    """A running job's trace. The first provider attempt is the call span itself; only when
    one fails do attempts get spans of their own (the failed one after the fact, from the
    time it was routed), so a request served at once has no attempt span."""

    __slots__ = ("envelope", "prefix", "flags", "call_span", "attempts", "current", "routed_ns")

    def __init__(self, envelope: Envelope, traceparent: str) -> None:
        self.envelope = envelope
        self.prefix = traceparent[:36]  # "00-<trace id>-"
        self.flags = traceparent[53:]
        self.call_span = new_span_id()
        self.attempts: list[AttemptTrace] = []
        # The attempt under way: (span id or "" while attempts have no spans, deployment, group).
        self.current: tuple[str, str, str] | None = None
        self.routed_ns = 0

    def upstream(self, span_id: str) -> str:
        return f"{self.prefix}{span_id}-{self.flags}"


# The trace of the job the current task serves (set by job_started, read by attempts).
_CURRENT: contextvars.ContextVar[_Job | None] = contextvars.ContextVar(
    "switchboard_job_trace", default=None
)


class JobTraces:
    """The worker's traces of running jobs, keyed by request id."""

    def __init__(self) -> None:
        self._jobs: dict[str, _Job] = {}

    def job_started(self, envelope: Envelope) -> None:
        """In the job's task: the provider call's span id, sent upstream from now on. A
        request queued without a trace (tracing turned on meanwhile) gets none."""
        if envelope.traceparent is None:
            return
        job = self._jobs[envelope.request_id] = _Job(envelope, envelope.traceparent)
        _CURRENT.set(job)
        UPSTREAM_TRACEPARENT.set(job.upstream(job.call_span))

    def attempt_started(self, group: str, deployment: str) -> None:
        job = _CURRENT.get()
        if job is None:
            return
        now = time.time_ns()
        if job.current is not None and job.current[0]:  # routed again without a failure
            self._close(job, now, "")
        span_id = new_span_id() if job.attempts else ""
        job.current, job.routed_ns = (span_id, deployment, group), now
        if span_id:
            UPSTREAM_TRACEPARENT.set(job.upstream(span_id))

    def attempt_failed(self, error_class: str) -> None:
        job = _CURRENT.get()
        if job is None or job.current is None:
            return
        if not job.current[0]:  # the first attempt had no span of its own: it gets one now
            job.current = (new_span_id(), job.current[1], job.current[2])
        self._close(job, time.time_ns(), error_class)

    @staticmethod
    def _close(job: _Job, end_ns: int, error: str) -> None:
        assert job.current is not None
        span_id, deployment, group = job.current
        job.attempts.append(AttemptTrace(span_id, deployment, group, job.routed_ns, end_ns, error))
        job.current = None

    def finished(self, request_id: str) -> CallTrace | None:
        job = self._jobs.pop(request_id, None)
        if job is None:
            return None
        if job.current is not None and job.current[0]:
            self._close(job, time.time_ns(), "")
        envelope = job.envelope
        return CallTrace(
            traceparent=envelope.traceparent or "",
            parent_span=envelope.trace_parent_span,
            front_start_ns=envelope.trace_start_ns,
            call_span=job.call_span,
            attempts=tuple(job.attempts),
        )

    def forget(self, request_id: str) -> None:
        self._jobs.pop(request_id, None)

    def routing_observer(self, inner: RoutingObserver) -> RoutingObserver:
        return TracedRouting(inner, self)


class TracedRouting:
    """The worker's routing observer, plus each provider attempt's times for its span."""

    def __init__(self, inner: RoutingObserver, traces: JobTraces) -> None:
        self.inner = inner
        self.traces = traces

    def figures_read(self, group: str, figures: Mapping[str, DeploymentFigures]) -> None:
        self.inner.figures_read(group, figures)

    def routed(self, group: str, deployment: str) -> None:
        self.inner.routed(group, deployment)
        self.traces.attempt_started(group, deployment)

    def failed(self, group: str, deployment: str, error_class: str) -> None:
        self.inner.failed(group, deployment, error_class)
        self.traces.attempt_failed(error_class)

    def retried(self, group: str, deployment: str) -> None:
        self.inner.retried(group, deployment)

    def fell_back(self, group: str, fallback: str) -> None:
        self.inner.fell_back(group, fallback)

    def cooled_down(self, group: str, deployment: str) -> None:
        self.inner.cooled_down(group, deployment)

    def fallback_skipped(self, group: str, fallback: str, reason: str) -> None:
        self.inner.fallback_skipped(group, fallback, reason)
