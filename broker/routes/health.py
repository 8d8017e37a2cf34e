"""Health: liveliness (the process answers) and readiness (Redis reachable, at least one
live worker unless `?workers=optional`, not draining). Readiness says only ready or not
(its status code and `{"status": ...}`) unless the caller may see operator detail: the
metrics port, or the master or metrics key on the API port (routes.keys.is_operator)."""

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
        await front.redis.ping()  # type: ignore[misc]  # redis-py types ping as sync-or-async
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
    checks["status"] = "ready" if is_ready else "not ready"
    body = checks if is_operator(request) else {"status": checks["status"]}
    return web.json_response(body, status=200 if is_ready else 503)
