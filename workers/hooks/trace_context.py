"""Where a request's W3C trace context travels (issue #19), without importing OpenTelemetry:
the front door puts its span's `traceparent` in the envelope, the worker puts its provider
span's on the upstream request.

Both hops use a ContextVar set in the task that serves the request, so no signature between
the route and the adapter changes; with tracing off both stay None and nothing is sent. No
span object is made on the way: the spans are made later, from ids and times
(workers/hooks/tracing.py).
"""

from __future__ import annotations

import contextvars
import re
from types import SimpleNamespace

import aiohttp


class FrontTrace:
    """One request's trace at the front door: its span's context (for the envelope), the
    client's span it continues, when it began, and whether a worker took the request (then
    the callbacks' consumer makes the span; otherwise the front door does)."""

    __slots__ = ("traceparent", "parent_span", "start_ns", "is_queued")

    def __init__(self, traceparent: str, parent_span: str, start_ns: int) -> None:
        self.traceparent = traceparent
        self.parent_span = parent_span
        self.start_ns = start_ns
        self.is_queued = False


# The front door's trace of the request it serves (broker/tracing.py sets it, the relay puts
# it in the envelope it queues).
FRONT_TRACE: contextvars.ContextVar[FrontTrace | None] = contextvars.ContextVar(
    "switchboard_front_trace", default=None
)
# The worker's provider-call span, sent upstream as the `traceparent` header.
UPSTREAM_TRACEPARENT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "switchboard_upstream_traceparent", default=None
)

# W3C Trace Context, version 00: trace id and parent id in lowercase hex, neither all zeros.
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")


def valid_traceparent(value: str | None) -> str | None:
    """`value` if it is a well-formed traceparent, else None (a client's header is only
    ever continued, never copied, when it is one)."""
    if value is None or len(value) != 55:
        return None
    return value if _TRACEPARENT.match(value) else None


async def _inject(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestStartParams,
) -> None:
    traceparent = UPSTREAM_TRACEPARENT.get()
    if traceparent is not None:
        params.headers["traceparent"] = traceparent


def upstream_trace_config() -> aiohttp.TraceConfig:
    """An aiohttp TraceConfig that adds the current provider span's traceparent to each
    upstream request (aiohttp lets on_request_start change the headers)."""
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_inject)
    return config
