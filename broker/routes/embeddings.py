"""POST /v1/embeddings: the same path as chat, never streamed."""

from __future__ import annotations

from aiohttp import web

from broker.body import decode, read_json_body
from broker.guardrails import GUARDRAILS
from broker.response_cache import RESPONSE_CACHE
from broker.routes.admitted import admitted_relay, request_options
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
    guards = request.app.get(GUARDRAILS)
    if guards is not None:  # issue #19: a block is a 400 before anything is queued
        body, checked = await guards.before(body, caller, "embedding")
    pending = None
    cache = request.app.get(RESPONSE_CACHE)
    if cache is not None:  # issue #19: a hit is answered here, before admission
        hit, pending = await cache.answer(
            request,
            body,
            kind="embedding",
            group=group,
            caller=caller,
        )
        if hit is not None:
            return hit
    relay = await admitted_relay(
        request,
        front,
        caller,
        kind=KIND_EMBEDDING,
        group=group,
        body=body,
        stream=False,
        options=options,
        call_type="embeddings",
        model=embedding.model,
        end_user=embedding.user,
    )
    if guards is not None:
        guards.attach(relay, checked, caller, "embedding")
    if pending is None:
        return await relay.run(request)
    pending.attach(relay, front.tasks)
    try:
        return await relay.run(request)
    finally:
        pending.settle(front.tasks)
