"""GET /metrics: this process's Prometheus registry in the text format."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broker.routes.keys import FRONT_DOOR


async def metrics(request: web.Request) -> web.Response:
    front = request.app[FRONT_DOOR]
    body = generate_latest(front.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
