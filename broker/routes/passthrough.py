"""Provider pass-through (issue #18): `/openai/{path}`, `/anthropic/{path}`,
`/gemini/{path}`, `/azure/{path}`, `/bedrock/{path}` (and `/vertex_ai/{path}` where Vertex's
path maps onto a Gemini deployment's) forward a request, authenticated with
the gateway's key, to a configured deployment of that provider with its credentials, and
stream the provider's answer back unchanged. Only the configured base is reachable
(workers/providers/passthrough.py checks the path), redirects are not followed, and the
client's credentials never leave the gateway. Requests are counted in the front door's
metrics under the group `<provider> pass-through`; they bypass the queue, so they carry no
usage or cost."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web
from yarl import URL

from broker.auth import Caller
from broker.frontdoor import FrontDoor
from broker.routes.keys import FRONT_DOOR
from workers.deployment import Deployment
from workers.errors import APIConnectionError, NotFound, PermissionDenied
from workers.http import HttpClient
from workers.providers.passthrough import (
    FORWARDED_HEADERS,
    PROVIDERS,
    Upstream,
    checked_path,
    upstream_for,
    vertex_claude_model,
    vertex_path,
)
from workers.providers.vertex import endpoint as vertex_endpoint

PASSTHROUGH_HTTP = web.AppKey("passthrough_http", HttpClient)
METHODS = ("GET", "POST", "DELETE")
# Upstream response headers the client gets besides the body's type.
RETURNED_HEADERS = ("Retry-After", "request-id", "x-request-id")
HEADER = "x-switchboard-passthrough"


async def passthrough_ctx(app: web.Application) -> AsyncIterator[None]:
    """The front door's one upstream session for pass-through requests."""
    http = HttpClient()
    app[PASSTHROUGH_HTTP] = http
    yield
    await http.close()


def add_passthrough_routes(app: web.Application) -> None:
    for name, provider in PROVIDERS.items():
        handler = _handler(name, provider)
        for method in METHODS:
            app.router.add_route(method, f"/{name}/{{path:.*}}", handler)


def _handler(name: str, provider: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await forward(request, provider, vertex=name == "vertex_ai")

    return handle


def _deployment(front: FrontDoor, provider: str) -> Deployment:
    """The first configured deployment of `provider`: its base and credentials."""
    for deployments in front.config.deployments.values():
        for deployment in deployments:
            if deployment.provider == provider:
                return deployment
    raise NotFound(
        f"no {provider} deployment is configured for pass-through",
        code="provider_not_configured",
    )


def _check_scope(caller: Caller, provider: str) -> None:
    # A pass-through names no model group, so a key limited to some groups may not use it.
    if caller.models is not None:
        raise PermissionDenied(
            f"API key `{caller.alias}` is limited to some models and may not use the "
            f"{provider} pass-through",
            code="key_model_access_denied",
        )


async def forward(
    request: web.Request, provider: str, *, vertex: bool = False
) -> web.StreamResponse:
    front = request.app[FRONT_DOOR]
    caller = await front.tenancy.authenticate(request)
    _check_scope(caller, provider)
    path = checked_path(request.match_info["path"])
    claude = vertex_claude_model(path) if vertex else None
    if claude is not None:
        # Claude on Vertex: the configured Vertex deployment's project, location and token.
        provider = vertex_endpoint.PROVIDER
        deployment = _deployment(front, provider)
        upstream = upstream_for(deployment)
        model, method = claude
        path = vertex_endpoint.model_url(deployment, model).removeprefix(upstream.root)
        path += ":" + method
    else:
        if vertex:
            path = vertex_path(path)
        upstream = upstream_for(_deployment(front, provider))
    body = await request.read()
    url = upstream.url(path, request.query)
    headers = await _headers(request, upstream, url, body)
    started = time.perf_counter()
    status = 502
    try:
        response = await relay_upstream(request, front, url, headers, body)
        status = response.status
        return response
    finally:
        elapsed = time.perf_counter() - started
        front.metrics.observe(f"{provider} pass-through", caller.alias, status, elapsed, None)


async def _headers(
    request: web.Request, upstream: Upstream, url: str, body: bytes
) -> dict[str, str]:
    headers = {h: request.headers[h] for h in FORWARDED_HEADERS if h in request.headers}
    headers.update(upstream.headers)
    if upstream.signer is not None:
        headers = await upstream.signer.headers(url, body, headers)
    return headers


async def relay_upstream(
    request: web.Request, front: FrontDoor, url: str, headers: dict[str, str], body: bytes
) -> web.StreamResponse:
    """Send the request on to `url` and stream its answer back unchanged (also how a
    provider-held Responses response is read, broker/routes/responses_held.py)."""
    session = request.app[PASSTHROUGH_HTTP].session
    timeout = aiohttp.ClientTimeout(total=front.settings.request_timeout_s)
    try:
        upstream = await session.request(
            request.method,
            URL(url, encoded=True),
            data=body or None,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,  # a redirect could lead anywhere
        )
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise APIConnectionError(
            f"the provider could not be reached ({type(exc).__name__})", code="connection_error"
        ) from None
    try:
        returned = {h: upstream.headers[h] for h in RETURNED_HEADERS if h in upstream.headers}
        response = web.StreamResponse(status=upstream.status, headers={**returned, HEADER: "1"})
        if upstream.content_type:
            response.content_type = upstream.content_type
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        upstream.close()
