"""The front door's part of a request's trace (issue #19): a server span per API request,
continuing the client's W3C `traceparent` when it sends a valid one, whose context goes
into the envelope (workers/hooks/trace_context.py) for the worker to continue.

On only when a callback list names `otel` or `langfuse`; the spans are exported by the
OpenTelemetry SDK's batch processor, off the request path (workers/hooks/tracing.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web
from aiohttp.typedefs import Middleware

from broker.config.loader import Config
from workers.hooks.trace_context import ENVELOPE_TRACEPARENT, valid_traceparent

if TYPE_CHECKING:
    from workers.hooks.tracing import Tracing

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TRACED_NAMES = ("otel", "langfuse")


def front_door_tracing(config: Config) -> Tracing | None:
    settings = config.litellm_settings
    named = {*settings.success_callback, *settings.failure_callback, *settings.callbacks}
    if not named.intersection(TRACED_NAMES):
        return None
    from workers.hooks.tracing import Tracing

    hooks = config.callback_settings
    return Tracing.from_settings(hooks.otel, hooks.langfuse)


def tracing_middleware(tracing: Tracing) -> Middleware:
    from opentelemetry.trace import Status, StatusCode

    from workers.hooks.tracing import traceparent_of

    @web.middleware
    async def trace(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST" or not request.path.startswith("/v1/"):
            return await handler(request)
        route = request.match_info.route.resource
        path = route.canonical if route is not None else request.path
        span = tracing.server_span(
            f"POST {path}",
            valid_traceparent(request.headers.get("traceparent")),
            {"http.request.method": "POST", "http.route": path},
        )
        token = ENVELOPE_TRACEPARENT.set(traceparent_of(span))
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            span.set_attribute("http.response.status_code", exc.status)
            raise
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        else:
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR, f"status {response.status}"))
            return response
        finally:
            ENVELOPE_TRACEPARENT.reset(token)
            span.end()

    return trace


def tracing_ctx(tracing: Tracing) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        await tracing.aclose()  # exports the spans still batched

    return ctx
