"""/v1/messages/count_tokens for a group of Claude-on-Vertex deployments (issue #18):
Vertex's own counter for Claude, `.../publishers/anthropic/models/count-tokens:rawPredict`
(Google's "Count tokens for Claude models"), which takes the Messages body with the model
named in it and answers Anthropic's `{"input_tokens": n}`, returned as it comes. A failure
is worded as any upstream failure is (workers/upstream_text.py): never Google's raw text,
never a credential."""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from broker.body import json_object
from broker.errors import JSON
from broker.routes.passthrough import PASSTHROUGH_HTTP
from workers.deployment import Deployment
from workers.errors import APIConnectionError, SwitchboardError
from workers.params import GATEWAY_FIELDS
from workers.providers.anthropic.errors import error_from_response
from workers.providers.vertex import endpoint
from workers.providers.vertex.auth import signer_for
from workers.upstream_text import for_client

BETA_HEADER = "anthropic-beta"
MAX_BETA_CHARS = 2048
COUNT_TIMEOUT_S = 30.0
COUNT_HEADER = "x-switchboard-token-count"


async def count_at_vertex(
    request: web.Request, deployment: Deployment, body: bytes
) -> web.Response:
    raw = json_object(body)
    for name in GATEWAY_FIELDS:
        raw.pop(name, None)
    payload = orjson.dumps(endpoint.count_tokens_body(raw, deployment.model))
    url = endpoint.model_url(deployment, endpoint.COUNT_TOKENS_MODEL) + ":rawPredict"
    headers = {"content-type": JSON, **deployment.extra_headers}
    if request.headers.get(BETA_HEADER):
        headers[BETA_HEADER] = request.headers[BETA_HEADER][:MAX_BETA_CHARS]
    try:
        headers = await signer_for(deployment.options).headers(url, payload, headers)
        answer, status, reply_headers = await _post(request, url, payload, headers)
        if status >= 400:
            raise error_from_response(status, reply_headers, answer, model=deployment.model)
    except SwitchboardError as exc:
        raise for_client(exc, deployment, "count_tokens") from None
    return web.Response(body=answer, content_type=JSON, headers={COUNT_HEADER: "provider"})


async def _post(
    request: web.Request, url: str, payload: bytes, headers: dict[str, str]
) -> tuple[bytes, int, Mapping[str, str]]:
    session = request.app[PASSTHROUGH_HTTP].session
    timeout = aiohttp.ClientTimeout(total=COUNT_TIMEOUT_S)
    try:
        async with session.post(
            URL(url, encoded=True),
            data=payload,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
        ) as reply:
            return await reply.read(), reply.status, reply.headers
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise APIConnectionError(
            f"Vertex AI's token counter could not be reached ({type(exc).__name__})",
            provider=endpoint.PROVIDER,
        ) from None
