"""GET /metrics: this process's Prometheus registry in the text format; on an API port that
several front doors share (`up --front-doors N`), all of theirs summed
(broker/shared_metrics.py). It names every model group, deployment and key alias with
their spend: on the API port only for the master key or `switchboard_settings.metrics_key`
(unless `public_metrics`); on the metrics port for whoever reaches it."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from broker import shared_metrics
from broker.routes.keys import FRONT_DOOR, OPERATOR_PORT, is_operator
from workers.errors import AuthenticationFailed


async def metrics(request: web.Request) -> web.Response:
    if not is_operator(request):
        raise AuthenticationFailed(
            "/metrics on the API port needs the master key or switchboard_settings.metrics_key "
            "(`Authorization: Bearer <key>`); or scrape the --metrics-port listener",
            code="metrics_key_required",
        )
    if shared_metrics.is_shared() and not request.app.get(OPERATOR_PORT, False):
        body = shared_metrics.aggregate()
    else:
        body = generate_latest(request.app[FRONT_DOOR].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
