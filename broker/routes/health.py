"""Health: liveliness (the process answers) and readiness (Redis reachable, at least one
live worker unless `?workers=optional`, not draining, no background task dead). Readiness
says only ready or not (its status code and `{"status": ...}`) unless the caller may see
operator detail: the metrics port, or the master or metrics key on the API port
(routes.keys.is_operator)."""

from __future__ import annotations

import time

from aiohttp import web
from redis.exceptions import RedisError

from broker.routes.keys import FRONT_DOOR, is_operator
from workers import redis_streams


async def liveliness(request: web.Request) -> web.Response:
    return web.json_response({"status": "alive"})


async def readiness(request: web.Request) -> web.Response:
    front = request.app[FRONT_DOOR]
    checks: dict[str, object] = {"draining": front.is_draining}
    try:
        await redis_streams.ping(front.redis)
        workers = await redis_streams.live_workers(
            front.redis, front.keys, time.time(), front.settings.worker_ttl_s
        )
        checks["redis"] = "ok"
        checks["live_workers"] = len(workers)
    except RedisError as exc:
        checks["redis"] = f"unreachable: {type(exc).__name__}"
        checks["live_workers"] = 0
    # `?workers=optional`: ready without a live worker, for pools that scale to zero (KEDA
    # starts workers on queued requests, so the front door must take them meanwhile).
    needs_worker = request.query.get("workers") != "optional"
    has_workers = bool(checks["live_workers"]) or not needs_worker
    is_ready = checks["redis"] == "ok" and has_workers and not front.is_draining
    if front.death is not None:
        # A background task died (the reply listener, the monitor): the process is stopping.
        checks["stopped_task"] = front.death.name
        is_ready = False
    checks["status"] = "ready" if is_ready else "not ready"
    body = checks if is_operator(request) else {"status": checks["status"]}
    return web.json_response(body, status=200 if is_ready else 503)
