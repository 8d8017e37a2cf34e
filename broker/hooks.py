"""The callbacks of a config, as each process sets them up (issue #19): the worker's, whose
final records feed the finished-request stream and whose consumer delivers it
(workers/hooks/consumer.py), and the front door's, which puts the requests it answers itself
(cache hits, guardrail blocks, every other refusal before queueing) on the same stream.

Each API request of a config with callbacks carries a `FrontTrace` (its ContextVar, set by
the middleware here): the relay marks it queued, the route names its caller, the cache and
the guardrails mark what they reported; after the handler, a refusal nobody reported goes
to the failure callbacks, and with tracing the front door's own spans are made.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from broker.auth import REQUEST_ID_PREFIX, Caller
from broker.config.errors import ConfigError
from broker.config.loader import Config
from broker.frontdoor import FrontDoor
from broker.tracing import FRONT_TRACING, finish_relay_span, note_first_byte
from workers.envelopes import KIND_CHAT, KIND_EMBEDDING, KIND_TEXT_COMPLETION
from workers.errors import SwitchboardError, error_for_status
from workers.hooks.front_events import FrontDoorEvents
from workers.hooks.service import FrontDoorAnswer, ServiceHooks
from workers.hooks.trace_context import FRONT_TRACE, FrontTrace, is_sampled, valid_traceparent

if TYPE_CHECKING:
    from workers.hooks.front_spans import FrontDoorTracing


def service_hooks(config: Config, *, delivers: bool = True) -> ServiceHooks | None:
    """The callbacks litellm_settings names, set up by callback_settings; None without any.
    A name neither built in nor importable stops the start (exit 2). A front door delivers
    nothing itself (`delivers=False`): its built-ins are named, not built."""
    settings = config.litellm_settings
    try:
        return ServiceHooks.from_config(
            success_callback=settings.success_callback,
            failure_callback=settings.failure_callback,
            callbacks=settings.callbacks,
            turn_off_message_logging=settings.turn_off_message_logging,
            settings=config.callback_settings,
            guardrails=list(config.guardrails),
            team_settings=list(settings.default_team_settings),
            builds_builtins=delivers,
        )
    except ValueError as exc:  # a name neither built in nor importable, a missing section
        raise ConfigError("litellm_settings.callbacks", str(exc)) from exc


FRONT_HOOKS = web.AppKey("front_hooks", ServiceHooks)


def front_hooks_ctx(
    config: Config, front_door: web.AppKey[FrontDoor]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The front door's answers onto the stream, by a task its supervisor owns; what is
    offered is added (within a grace) before the front door closes."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        hooks = service_hooks(config, delivers=False)
        if hooks is None:
            yield
            return
        front = app[front_door]
        hooks.dispatcher = FrontDoorEvents(
            hooks.callbacks, front.redis, front.keys, max_queue=config.callback_settings.max_queue
        )
        front.tasks.start("callbacks", hooks.dispatcher.run, restart_after_s=1.0)
        app[FRONT_HOOKS] = hooks
        yield
        await hooks.dispatcher.aclose()

    return ctx


# ------------------------------------------------------------------ each API request

# The inference routes, whose refusals are calls the failure callbacks log: the kind each
# queues (its call type in the callbacks' kwargs).
CALL_ROUTES = {
    "/v1/chat/completions": KIND_CHAT,
    "/chat/completions": KIND_CHAT,
    "/v1/completions": KIND_TEXT_COMPLETION,
    "/completions": KIND_TEXT_COMPLETION,
    "/v1/embeddings": KIND_EMBEDDING,
    "/embeddings": KIND_EMBEDDING,
    "/v1/messages": KIND_CHAT,
    "/v1/responses": KIND_CHAT,
}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def names_callbacks(config: Config) -> bool:
    settings = config.litellm_settings
    lists = [settings.success_callback, settings.failure_callback, settings.callbacks]
    for team in settings.default_team_settings:
        lists += [team.success_callback, team.failure_callback, team.callbacks]
    return any(lists)


def add_request_hooks(
    app: web.Application,
    config: Config,
    tracing: FrontDoorTracing | None,
    front_door: web.AppKey[FrontDoor],
) -> None:
    """When a config names any callback: each API request's record for the hooks
    (`FRONT_TRACE`), its refusal before queueing told to the failure callbacks, and, with
    tracing, its front door span or its relay's span. Outermost, so it sees the status
    the client got."""
    if tracing is None and not names_callbacks(config):
        return
    app.middlewares.insert(0, request_hooks(tracing, front_door))
    if tracing is not None:
        app.on_response_prepare.append(note_first_byte)
        app[FRONT_TRACING] = tracing


def request_hooks(
    tracing: FrontDoorTracing | None, front_door: web.AppKey[FrontDoor]
) -> Middleware:
    @web.middleware
    async def hooks(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method != "POST":
            return await handler(request)
        resource = request.match_info.route.resource
        path = resource.canonical if resource is not None else request.path
        kind = CALL_ROUTES.get(path)
        traced = tracing if request.path.startswith("/v1/") else None
        if kind is None and traced is None:
            return await handler(request)
        if traced is not None:
            trace = traced.start(valid_traceparent(request.headers.get("traceparent")))
            if trace.traceparent is None or not is_sampled(trace.traceparent):
                traced = None  # an unsampled trace: no span here (its context still travels)
        else:
            trace = FrontTrace(None, "", 0)
        started_s = time.time()
        token = FRONT_TRACE.set(trace)
        status = 499  # unless the handler returns or raises an HTTP error
        is_relay_spanned = False
        try:
            response = await handler(request)
            status = response.status
            if kind is not None and status >= 400 and not trace.is_queued:
                front = request.app[front_door]
                await report_refusal(request, front, trace, kind, response, started_s)
            if traced is not None and trace.is_relayed:
                is_relay_spanned = True
                await finish_relay_span(traced, request, trace, response)
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except ConnectionResetError:
            raise  # the client went away: 499
        except Exception:
            status = 500
            raise
        finally:
            FRONT_TRACE.reset(token)
            if traced is not None:
                _front_spans(traced, trace, path, status, is_relay_spanned)

    return hooks


def _front_spans(
    tracing: FrontDoorTracing, trace: FrontTrace, route: str, status: int, is_relay_spanned: bool
) -> None:
    """The spans the front door makes itself, once the handler is done."""
    if not trace.is_queued:  # no worker saw it: its span is made here
        tracing.answered_here(trace, route, status)
    elif trace.is_relayed and not is_relay_spanned:  # the relay ended by an error
        tracing.relayed(trace, None, time.time_ns())


def note_caller(caller: Caller) -> None:
    """The route knows who asks: a refusal's event and the trace's team exports say so."""
    trace = FRONT_TRACE.get()
    if trace is not None:
        trace.key_alias = caller.alias
        trace.team_id = team_of(caller)


def team_of(caller: Caller) -> str | None:
    """The team of a database key (issue #17): its requests go to that team's callbacks."""
    principal = caller.principal
    return principal.key.team_id if principal is not None else None


def answered_here(hooks: ServiceHooks, answer: FrontDoorAnswer) -> None:
    """An answer the front door gives itself (a cache hit, a guardrail's block) onto the
    finished-request stream, once."""
    trace = FRONT_TRACE.get()
    if trace is not None:
        trace.is_reported = True
    if hooks.reads_calls:  # span exports alone: the front door made its span already
        hooks.dispatcher.offer(answer)


async def report_refusal(
    request: web.Request,
    front: FrontDoor,
    trace: FrontTrace,
    kind: int,
    response: web.StreamResponse,
    started_s: float,
) -> None:
    """A request refused before it was queued (a bad key, a bad body, a limit or a budget,
    a full queue) as a failure for the callbacks: its status and the error the client got.
    Who asked is the route's caller, or the key checked again here (a refusal before the
    route knew it); the body goes with it only for a caller that authenticated."""
    hooks = request.app.get(FRONT_HOOKS)
    if trace.is_reported or hooks is None or not hooks.reads_calls:
        return  # told already; or span exports alone (the front door makes the span)
    if not isinstance(response, web.Response):
        return
    if trace.key_alias is None and response.status != 401:
        try:
            note_caller(await front.tenancy.authenticate(request))
        except Exception:  # the key itself is what was refused: nobody to name
            trace.key_alias = None
    body = await _read_body(request) if trace.key_alias is not None else b""
    request_json = _object(body)
    model = request_json.get("model")
    hooks.dispatcher.offer(
        FrontDoorAnswer(
            request_id=response.headers.get("x-request-id") or new_request_id(),
            kind=kind,
            model_group=model if isinstance(model, str) else "",
            body=body,
            started_s=started_s,
            stream=request_json.get("stream") is True,
            api_key_alias=trace.key_alias,
            error=_refusal(response),
            team_id=trace.team_id,
        )
    )


def new_request_id() -> str:
    return REQUEST_ID_PREFIX + os.urandom(12).hex()


async def _read_body(request: web.Request) -> bytes:
    """The body the route read already (aiohttp keeps it); none when it was never read
    (refused before, too large) or could not be."""
    if request.can_read_body:
        return b""
    try:
        return await request.read()
    except Exception:
        return b""


def _object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _refusal(response: web.Response) -> SwitchboardError:
    """The error the client was sent (OpenAI's `error` object; Anthropic's on /v1/messages
    has no code), as the callbacks' `exception`."""
    body = response.body if isinstance(response.body, bytes) else b""
    detail = _object(body).get("error")
    detail = detail if isinstance(detail, dict) else {}
    message = detail.get("message")
    code = detail.get("code")
    return error_for_status(
        response.status,
        message if isinstance(message, str) else f"refused with status {response.status}",
        code=code if isinstance(code, str) else None,
    )
