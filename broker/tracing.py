"""The front door's part of a request's trace (issue #19): a span context per API request,
continuing the client's W3C `traceparent` when it sends a valid one, which goes into the
envelope (broker/relay.py) for the worker to continue.

No span object is made on the request's path. A request a worker serves gets its front door
span from the callbacks' consumer, with the worker's spans (workers/hooks/tracing.py); the
front door makes only the span of a request it answers itself (a cache hit, a refusal),
exported by the SDK's batch processor on its own thread. On only when a callback list
names `otel` or `langfuse`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

from broker.config.loader import Config
from workers.hooks.trace_context import FRONT_TRACE, valid_traceparent

if TYPE_CHECKING:
    from workers.hooks.tracing import FrontDoorTracing

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TRACED_NAMES = ("otel", "langfuse")


def front_door_tracing(config: Config) -> FrontDoorTracing | None:
    settings = config.litellm_settings
    lists = [settings.success_callback, settings.failure_callback, settings.callbacks]
    for team in settings.default_team_settings:
        lists += [team.success_callback, team.failure_callback, team.callbacks]
    if not {name for names in lists for name in names}.intersection(TRACED_NAMES):
        return None
    from workers.hooks.tracing import FrontDoorTracing, span_exports
    from workers.settings.hooks import OtelCallback

    hooks = config.callback_settings
    # The spans of requests answered here go to the global exporters (`otel` when named or
    # configured, `langfuse` when configured), a team's own project only gets its workers'.
    exports = span_exports(hooks.otel or OtelCallback(), hooks.langfuse)
    if "otel" not in {name for names in lists for name in names} and hooks.otel is None:
        exports.pop("otel", None)
    return FrontDoorTracing(hooks.otel or OtelCallback(), exports)


def tracing_middleware(tracing: FrontDoorTracing) -> Middleware:
    @web.middleware
    async def trace(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or not request.path.startswith("/v1/"):
            return await handler(request)
        front = tracing.start(valid_traceparent(request.headers.get("traceparent")))
        token = FRONT_TRACE.set(front)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            FRONT_TRACE.reset(token)
            if not front.is_queued:  # no worker saw it: its span is the front door's
                route = request.match_info.route.resource
                path = route.canonical if route is not None else request.path
                tracing.answered_here(front, path, status)

    return trace


def tracing_ctx(tracing: FrontDoorTracing) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        await tracing.aclose()  # exports the spans still batched

    return ctx
