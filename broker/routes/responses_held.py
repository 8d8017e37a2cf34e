"""Responses a provider holds (issue #18): a native /v1/responses reply's id is the
provider's, and the provider keeps the response. The worker recorded whose the id is and
which deployment holds it (workers/ingress/response_store.py), so GET, DELETE,
input_items and cancel of an id the caller owns go to that deployment with its
credentials, and its answer comes back unchanged; another key's id is a 404 before
anything leaves the gateway. Like a pass-through these bypass the queue (they carry no
usage) and are counted in the front door's metrics under the deployment's model group."""

from __future__ import annotations

import time

from aiohttp import web
from yarl import URL

from broker.auth import Caller
from broker.frontdoor import FrontDoor
from broker.routes.passthrough import relay_upstream
from workers.deployment import Deployment
from workers.errors import NotFound
from workers.ingress import response_store
from workers.providers.held_responses import (
    held_response_headers,
    held_response_query,
    held_response_url,
)
from workers.providers.passthrough import CREDENTIAL_QUERY

# Client headers a held response's read may carry on.
FORWARDED_HEADERS = ("accept", "content-type", "openai-beta")


async def holder(front: FrontDoor, caller: Caller, response_id: str) -> str | None:
    """The deployment holding `response_id` when a provider made it for this caller;
    None when the id is not one the gateway relayed; a 404 when it is another key's."""
    return await response_store.provider_deployment(
        front.redis, front.keys, response_id, caller.owner
    )


def _deployment(front: FrontDoor, label: str, response_id: str) -> tuple[str, Deployment]:
    for group, deployments in front.config.deployments.items():
        for deployment in deployments:
            if deployment.label == label:
                return group, deployment
    raise NotFound(
        f"Response with id '{response_id}' is held by deployment `{label}`, which is no "
        "longer configured.",
        param="response_id",
        code="response_not_found",
    )


async def forward(
    request: web.Request,
    front: FrontDoor,
    caller: Caller,
    label: str,
    response_id: str,
    tail: str = "",
) -> web.StreamResponse:
    """Send the client's request for a held response on to the deployment holding it."""
    group, deployment = _deployment(front, label, response_id)
    query = {k: v for k, v in request.query.items() if k.lower() not in CREDENTIAL_QUERY}
    url = URL(held_response_url(deployment, response_id, tail), encoded=True)
    url = url.with_query({**held_response_query(deployment), **query})
    headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
    headers.update(held_response_headers(deployment))
    body = await request.read()
    started = time.perf_counter()
    status = 502
    try:
        response = await relay_upstream(request, front, str(url), headers, body)
        status = response.status
        return response
    finally:
        elapsed = time.perf_counter() - started
        front.metrics.observe(group, caller.alias, status, elapsed, None)
