"""POST /v1/embeddings: the same path as chat, never streamed."""

from __future__ import annotations

from aiohttp import web

from broker.body import decode, read_json_body
from broker.relay import Relay
from broker.routes.admitted import admitted_relay, request_options
from broker.routes.hooked import run_hooked
from broker.routes.keys import FRONT_DOOR
from workers.envelopes import KIND_EMBEDDING
from workers.validation import validate_embedding_request
from workers.wire import decode_embedding_request


async def embeddings(request: web.Request) -> web.StreamResponse:
    front = request.app[FRONT_DOOR]
    caller = await front.tenancy.authenticate(request)
    body = await read_json_body(request, front.settings.max_body_bytes)
    embedding = decode(decode_embedding_request, body)
    validate_embedding_request(embedding, front.limits)
    options = request_options(front, body)
    group = front.resolve_group(embedding.model, caller)

    async def admit(checked_body: bytes) -> Relay:
        return await admitted_relay(
            request,
            front,
            caller,
            kind=KIND_EMBEDDING,
            group=group,
            body=checked_body,
            stream=False,
            options=options,
            call_type="embeddings",
            model=embedding.model,
            end_user=embedding.user,
        )

    return await run_hooked(
        request,
        front,
        caller,
        kind="embedding",
        body=body,
        group=group,
        admit=admit,
    )
