"""POST /v1/embeddings: the same path as chat, never streamed."""

from __future__ import annotations

from aiohttp import web

from broker.body import decode, gateway_options, max_num_retries, read_json_body
from broker.guardrails import GUARDRAILS
from broker.relay import Relay
from broker.response_cache import RESPONSE_CACHE
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
    options = gateway_options(
        body,
        max_timeout_s=front.settings.request_timeout_s,
        max_num_retries=max_num_retries(front.config),
    )
    group = front.resolve_group(embedding.model, caller)
    lane = front.lane_for(request, options)
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
    front.admit(lane)
    ticket = await front.tenancy.ticket(
        caller,
        call_type="embeddings",
        model=embedding.model,
        group=group,
        body_bytes=len(body),
        end_user=embedding.user,
    )
    relay = Relay(
        front,
        kind=KIND_EMBEDDING,
        group=group,
        lane=lane,
        body=body,
        stream=False,
        options=options,
        caller=caller,
        ticket=ticket,
    )
    if guards is not None:
        guards.attach(relay, checked, caller, "embedding")
    if pending is not None:
        pending.attach(relay, front.tasks)
    return await relay.run(request)
