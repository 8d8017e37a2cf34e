"""GET /metrics: this process's Prometheus registry in the text format. It names every model
group, deployment and key alias with their spend: on the API port only for the master key
or `switchboard_settings.metrics_key` (unless `public_metrics`); on the metrics port for
whoever reaches it."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broker.routes.keys import FRONT_DOOR, is_operator
from workers.errors import AuthenticationFailed


async def metrics(request: web.Request) -> web.Response:
    if not is_operator(request):
        raise AuthenticationFailed(
            "/metrics on the API port needs the master key or switchboard_settings.metrics_key "
            "(`Authorization: Bearer <key>`); or scrape the --metrics-port listener",
            code="metrics_key_required",
        )
    front = request.app[FRONT_DOOR]
    body = generate_latest(front.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
