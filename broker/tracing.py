"""The front door's part of a request's trace (issue #19): a span context per API request,
continuing the client's W3C `traceparent` when it sends a valid one, which goes into the
envelope (broker/relay.py) for the worker to continue.

No span object is made here. A request a worker serves gets its front door span from the
callbacks' consumer, with the worker's spans (workers/hooks/tracing.py); of the spans only
the front door sees end (the relay of a worker's answer to the client, a request it
answered itself), it keeps records that go onto the finished-request stream in batches
(workers/hooks/front_spans.py), for the same consumer to make and export. On only when a
callback list names `otel` or `langfuse`. The middleware that calls this is
broker/hooks.py's.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from broker.config.loader import Config
from broker.frontdoor import FrontDoor
from workers.hooks.front_spans import FrontDoorTracing
from workers.hooks.trace_context import FRONT_TRACE, FrontTrace
from workers.settings.hooks import OtelCallback

log = logging.getLogger("switchboard.tracing")

TRACED_NAMES = ("otel", "langfuse")
# Seconds a stopping front door tries to put its last span records onto the stream.
SHUTDOWN_GRACE_S = 5.0
# The front door's tracing, when on (tests and benchmarks flush it).
FRONT_TRACING: web.AppKey[FrontDoorTracing] = web.AppKey("front_tracing")


def front_door_tracing(config: Config) -> FrontDoorTracing | None:
    """On when any callback list (a team's included) names a span export."""
    settings = config.litellm_settings
    lists = [settings.success_callback, settings.failure_callback, settings.callbacks]
    for team in settings.default_team_settings:
        lists += [team.success_callback, team.failure_callback, team.callbacks]
    if not {name for names in lists for name in names}.intersection(TRACED_NAMES):
        return None
    return FrontDoorTracing(config.callback_settings.otel or OtelCallback())


async def finish_relay_span(
    tracing: FrontDoorTracing, request: web.Request, trace: FrontTrace, response: web.StreamResponse
) -> None:
    """A worker's answer relayed: send what is left of it now (a non-stream response is
    still unsent; a stream's end), so the span ends at its last byte and counts it."""
    try:
        await response.prepare(request)
        await response.write_eof()
    except (ConnectionResetError, RuntimeError):
        # The client left before the end: aiohttp, finishing the response, finds it so too.
        trace.relayed(499)
        tracing.relayed(trace, None, time.time_ns())
        return
    tracing.relayed(trace, response.body_length, time.time_ns())


async def note_first_byte(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare`: the answer's first bytes (status and headers) go out now."""
    trace = FRONT_TRACE.get()
    if trace is not None and trace.is_relayed and not trace.first_byte_ns:
        trace.first_byte_ns = time.time_ns()


def tracing_ctx(
    tracing: FrontDoorTracing, front_door: web.AppKey[FrontDoor]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The records onto the stream by a task the front door's supervisor owns; what is
    recorded when the front door stops goes too (before its Redis client closes)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        front = app[front_door]
        tracing.bind(lambda: front.redis, front.keys)
        front.tasks.start("front door spans", tracing.run, restart_after_s=1.0)
        yield
        try:
            # A Redis that stopped answering must not hold the shutdown up.
            async with asyncio.timeout(SHUTDOWN_GRACE_S):
                await tracing.flush()
        except TimeoutError:
            log.warning("stopping with %d span records not on the stream", len(tracing.pending))

    return ctx
