"""The front door's aiohttp application and its lifecycle.

Resources are opened in `cleanup_ctx` order and closed in reverse. Drain, in this order:
readiness fails, the listening socket closes, in-flight requests finish within the drain
timeout, what is left is cancelled (its cancellation reaches the workers), pools close.
A background task of the front door that dies drains it the same way, and then
`serve_front_door` raises its `TaskDied` (the process exits 1; broker/frontdoor.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from broker.batches.routes import add_batch_routes
from broker.batches.state import BATCH_ROLE, BatchRole, batches_ctx
from broker.config.loader import Config
from broker.console.mount import add_console
from broker.errors import error_middleware
from broker.files import files_ctx
from broker.files.routes import add_file_routes
from broker.frontdoor import FrontDoor
from broker.guardrails import guardrails_ctx
from broker.hooks import add_request_hooks, front_hooks_ctx
from broker.http_server import GuardedRunner
from broker.management import MANAGEMENT, add_management_routes, management_ctx
from broker.response_cache import response_cache_ctx
from broker.routes import add_operator_routes, add_routes
from broker.routes.keys import FRONT_DOOR, OPERATOR_PORT
from broker.routes.passthrough import PASSTHROUGH_HTTP, add_passthrough_routes, passthrough_ctx
from broker.tenancy import start_tenancy, stop_tenancy
from broker.tracing import front_door_tracing, tracing_ctx
from workers.connect import connect
from workers.settings.switchboard import HttpLimits
from workers.supervision import TaskDied

log = logging.getLogger("switchboard.app")

REDIS_POOL_SIZE = 64
FOLLOW_POOL_SIZE = 64
# Connections the kernel holds for us before we accept them. aiohttp's default of 128
# overflows when thousands of clients connect at once (a batch job): the overflow's
# handshakes are retried after 1, 2, 4, 8 s, stalling those requests. uvicorn uses 2048.
LISTEN_BACKLOG = 2048
# Seconds a handler waits for a free pooled connection before failing.
POOL_WAIT_S = 10.0


def redis_client(url: str, max_connections: int) -> Redis:
    # A blocking pool: with more requests in flight than connections (a burst of thousands),
    # a handler waits its turn; a plain pool raises MaxConnectionsError and the client gets 500.
    # A Redis Cluster when the URL says `redis+cluster://` (workers.connect).
    return connect(url, max_connections=max_connections, pool_timeout_s=POOL_WAIT_S)


def create_app(
    config: Config,
    redis_url: str,
    *,
    front_door_id: str | None = None,
    registry: CollectorRegistry | None = None,
    batch_role: BatchRole = "beside",
) -> web.Application:
    """The front door's app; `batch_role`: whether it runs batches (broker/batches/state.py)."""
    settings = config.switchboard_settings
    # Traces when a callback list names otel or langfuse (issue #19).
    tracing = front_door_tracing(config)
    middlewares: list[Middleware] = [error_middleware]
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=middlewares)
    add_request_hooks(app, config, tracing, FRONT_DOOR)
    app[BATCH_ROLE] = batch_role

    async def front_door_ctx(app: web.Application) -> AsyncIterator[None]:
        redis = redis_client(redis_url, REDIS_POOL_SIZE)
        follow = connect(redis_url, max_connections=FOLLOW_POOL_SIZE)
        front = FrontDoor(
            config,
            redis,
            follow_redis=follow,
            registry=registry if registry is not None else CollectorRegistry(),
            front_door_id=front_door_id,
        )
        try:
            await front.start()
            app[FRONT_DOOR] = front
            yield
            await front.stop()
        finally:
            await follow.aclose()
            await redis.aclose()

    app.cleanup_ctx.append(front_door_ctx)
    if tracing is not None:  # its spans onto the stream before the front door's Redis closes
        app.cleanup_ctx.append(tracing_ctx(tracing, FRONT_DOOR))
    # The callbacks first: the cache and the guardrails tell them what they answer.
    app.cleanup_ctx.append(front_hooks_ctx(config, FRONT_DOOR))
    app.cleanup_ctx.append(response_cache_ctx(config, FRONT_DOOR))
    app.cleanup_ctx.append(guardrails_ctx(config, FRONT_DOOR, PASSTHROUGH_HTTP))
    app.cleanup_ctx.append(management_ctx(config))

    async def tenancy_ctx(app: web.Application) -> AsyncIterator[None]:
        start_tenancy(app[FRONT_DOOR], app[MANAGEMENT])  # issue #17: database keys
        yield
        await stop_tenancy(app[FRONT_DOOR])

    app.cleanup_ctx.append(tenancy_ctx)
    app.cleanup_ctx.append(files_ctx(config))
    app.cleanup_ctx.append(batches_ctx)
    app.cleanup_ctx.append(passthrough_ctx)
    add_routes(app)
    add_passthrough_routes(app)
    add_management_routes(app)
    add_file_routes(app)
    add_batch_routes(app)
    add_console(app)
    return app


def create_operator_app(front: FrontDoor) -> web.Application:
    """The metrics port's app: /metrics and health of `front`, no API. It shares the front
    door the API app opened and closes, and owns nothing itself."""
    app = web.Application(middlewares=[error_middleware])
    app[FRONT_DOOR] = front
    app[OPERATOR_PORT] = True
    add_operator_routes(app)
    return app


def front_door_runner(
    app: web.Application, limits: HttpLimits, *, shutdown_timeout_s: float
) -> GuardedRunner:
    return GuardedRunner(
        app,
        limits,
        # A client that disconnects cancels its handler, and through it the upstream call.
        handler_cancellation=True,
        access_log=None,
        shutdown_timeout=shutdown_timeout_s,
    )


async def serve_front_door(
    config: Config,
    redis_url: str,
    *,
    host: str,
    port: int,
    stopping: asyncio.Event,
    ready: asyncio.Event | None = None,
    reuse_port: bool = False,
    registry: CollectorRegistry | None = None,
    metrics_port: int | None = None,
    batch_role: BatchRole = "beside",
) -> None:
    """Serve until `stopping` is set, then drain. `metrics_port` adds a listener of this
    process alone serving only /metrics and health, for scraping and probes when several
    front doors share `port`. If a background task of the front door dies, drain all the
    same, then raise its `TaskDied`."""
    app = create_app(config, redis_url, registry=registry, batch_role=batch_role)
    settings = config.switchboard_settings
    runner = front_door_runner(app, settings.http, shutdown_timeout_s=settings.drain_timeout_s)
    await runner.setup()
    operator: GuardedRunner | None = None
    try:
        if metrics_port is not None:
            operator = await start_operator_listener(app[FRONT_DOOR], config, host, metrics_port)
        site = web.TCPSite(
            runner, host, port, reuse_port=reuse_port or None, backlog=LISTEN_BACKLOG
        )
        await site.start()
        log.info("front door %s listening on http://%s:%d", app[FRONT_DOOR].id, host, port)
        if ready is not None:
            ready.set()
        death = await _stopped_or_dead(stopping, app[FRONT_DOOR])
        app[FRONT_DOOR].is_draining = True
        log.info("front door draining")
    finally:
        await runner.cleanup()
        # Last: the metrics port reports the drain on readiness while it runs.
        if operator is not None:
            await operator.cleanup()
    if death is not None:
        raise death


async def _stopped_or_dead(stopping: asyncio.Event, front: FrontDoor) -> TaskDied | None:
    """Wait for the stop flag or a background task's death, whichever comes first."""
    stop = asyncio.ensure_future(stopping.wait())
    died = asyncio.ensure_future(front.tasks.wait())
    try:
        await asyncio.wait((stop, died), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        died.cancel()
    return front.death


async def start_operator_listener(
    front: FrontDoor, config: Config, host: str, port: int
) -> GuardedRunner:
    """The metrics port: its own listener and its own connection count, so that a flood
    on the API port does not keep the scraper out."""
    runner = GuardedRunner(
        create_operator_app(front), config.switchboard_settings.http, access_log=None
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("front door metrics and health on http://%s:%d", host, port)
    return runner
