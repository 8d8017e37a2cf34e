"""The front door's part of a request's trace (issue #19): a span context per API request,
continuing the client's W3C `traceparent` when it sends a valid one, which goes into the
envelope (broker/relay.py) for the worker to continue.

No span object is made on the request's path. A request a worker serves gets its front door
span from the callbacks' consumer, with the worker's spans (workers/hooks/tracing.py); the
front door makes only the span of a request it answers itself (a cache hit, a refusal) and
the span of its relay of a worker's answer to the client, after the last byte, exported by
the SDK's batch processor on its own thread. On only when a callback list names `otel` or
`langfuse`. The middleware that calls this is broker/hooks.py's.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from broker.config.loader import Config
from workers.hooks.trace_context import FRONT_TRACE, FrontTrace

if TYPE_CHECKING:
    from workers.hooks.tracing import FrontDoorTracing, SpanExport

TRACED_NAMES = ("otel", "langfuse")
# The front door's tracing, when on (benchmarks flush it).
FRONT_TRACING: web.AppKey[FrontDoorTracing] = web.AppKey("front_tracing")


def front_door_tracing(config: Config) -> FrontDoorTracing | None:
    settings = config.litellm_settings
    lists = [settings.success_callback, settings.failure_callback, settings.callbacks]
    for team in settings.default_team_settings:
        lists += [team.success_callback, team.failure_callback, team.callbacks]
    named = {name for names in lists for name in names}.intersection(TRACED_NAMES)
    if not named:
        return None
    from workers.hooks.tracing import FrontDoorTracing, span_exports
    from workers.settings.hooks import OtelCallback

    hooks = config.callback_settings
    # The spans made here go to the global exporters (`otel` when named or configured,
    # `langfuse` when configured) ...
    exports = span_exports(hooks.otel or OtelCallback(), hooks.langfuse)
    if "otel" not in named and hooks.otel is None:
        exports.pop("otel", None)
    # ... or, for a key of a team that names an export, to the team's: its own Langfuse
    # project replaces the global one, as the callbacks' consumer does for the team's
    # worker-made spans (workers/hooks/consumer.py).
    teams: dict[str, dict[str, SpanExport]] = {}
    for team in settings.default_team_settings:
        own = {
            name
            for names in (team.success_callback, team.failure_callback, team.callbacks)
            for name in names
        }.intersection(TRACED_NAMES)
        if not own:
            continue
        chosen = dict(exports)
        langfuse = team.langfuse(None)
        if "langfuse" in own and langfuse is not None:
            chosen["langfuse"] = span_exports(None, langfuse)["langfuse"]
        teams[team.team_id] = chosen
    return FrontDoorTracing(hooks.otel or OtelCallback(), exports, teams)


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


def tracing_ctx(tracing: FrontDoorTracing) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        await tracing.aclose()  # exports the spans still batched

    return ctx
