"""Typed application keys: the state every handler reads."""

from __future__ import annotations

from aiohttp import web

from broker.frontdoor import FrontDoor

FRONT_DOOR = web.AppKey("front_door", FrontDoor)
# Set on the app behind `--metrics-port`: the operator's listener, where /metrics and the
# detailed readiness need no key.
OPERATOR_PORT = web.AppKey("operator_port", bool)


def is_operator(request: web.Request) -> bool:
    """Whether the request may see operator detail: on the metrics port, or on the API port
    with the master key or metrics key (or `public_metrics`)."""
    return request.app.get(OPERATOR_PORT, False) or request.app[FRONT_DOOR].is_operator(request)
