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
import time

import aiohttp


class FrontTrace:
    """One API request at the front door, as the hooks see it: its span's context (for the
    envelope; None with tracing off), the client's span it continues, when it began, whether
    a worker took the request (then the callbacks' consumer makes its span and logs it;
    otherwise the front door does), and what the relay of the worker's answer did (its own
    span: the first byte's time, the bytes, the outcome).

    Set for each API request when a config names any callback (broker/hooks.py)."""

    __slots__ = (
        "traceparent",
        "parent_span",
        "start_ns",
        "is_queued",
        "is_relayed",
        "queued_ns",
        "first_byte_ns",
        "relay_status",
        "is_reported",
        "key_alias",
        "team_id",
    )

    def __init__(self, traceparent: str | None, parent_span: str, start_ns: int) -> None:
        self.traceparent = traceparent
        self.parent_span = parent_span
        self.start_ns = start_ns
        self.is_queued = False
        self.is_relayed = False
        self.queued_ns = 0
        self.first_byte_ns = 0
        self.relay_status = 0
        # The cache or a guardrail told the callbacks of this answer already.
        self.is_reported = False
        # Who asked, once the route knows (a refusal's event, a team's span exports).
        self.key_alias: str | None = None
        self.team_id: str | None = None

    def queued(self, *, relays: bool = True) -> None:
        """The request is on a lane: a worker answers it, the relay (unless `relays` is
        False: a background request) forwards the answer."""
        self.is_queued = True
        self.is_relayed = relays
        self.queued_ns = time.time_ns()

    def relayed(self, status: int) -> None:
        """The relay's outcome, the status it ended with (499: the client went away)."""
        self.relay_status = status


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


def is_sampled(traceparent: str) -> bool:
    """The traceparent's sampled flag (its last two hex digits' lowest bit)."""
    return bool(int(traceparent[53:55], 16) & 1)


def valid_traceparent(value: str | None) -> str | None:
    """`value` if it is a well-formed traceparent, else None (a client's header is only
    ever continued, never copied, when it is one)."""
    if value is None or len(value) != 55:
        return None
    return value if _TRACEPARENT.match(value) else None


async def send_traceparent(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    """A client middleware (aiohttp 3.12+) that adds the current provider span's
    traceparent to each upstream request. A TraceConfig's `on_request_start` could do the
    same, but a session with one sends its ten-odd signals for every request: 17 µs of CPU a
    request against this middleware's 3 (benchmarks/HOOKS.md)."""
    traceparent = UPSTREAM_TRACEPARENT.get()
    if traceparent is not None:
        request.headers["traceparent"] = traceparent
    return await handler(request)
