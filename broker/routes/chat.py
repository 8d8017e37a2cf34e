"""POST /v1/chat/completions: validate once, admit, enqueue, relay."""

from __future__ import annotations

from aiohttp import web

from broker.body import decode, read_json_body
from broker.guardrails import GUARDRAILS
from broker.response_cache import RESPONSE_CACHE
from broker.routes.admitted import admitted_relay, request_options
from broker.routes.keys import FRONT_DOOR
from workers.envelopes import KIND_CHAT
from workers.validation import validate_chat_request
from workers.wire import decode_chat_request


async def chat_completions(request: web.Request) -> web.StreamResponse:
    front = request.app[FRONT_DOOR]
    caller = await front.tenancy.authenticate(request)
    body = await read_json_body(request, front.settings.max_body_bytes)
    chat = decode(decode_chat_request, body)
    validate_chat_request(chat, front.limits)
    options = request_options(front, body)
    group = front.resolve_group(chat.model, caller)
    guards = request.app.get(GUARDRAILS)
    if guards is not None:  # issue #19: a block is a 400 before anything is queued
        body, checked = await guards.before(body, caller, "chat")
    pending = None
    cache = request.app.get(RESPONSE_CACHE)
    if cache is not None:  # issue #19: a hit is answered here, before admission
        hit, pending = await cache.answer(
            request,
            body,
            kind="chat",
            group=group,
            caller=caller,
            stream=chat.is_stream,
            include_usage=chat.include_usage,
        )
        if hit is not None:
            return hit
    relay = await admitted_relay(
        request,
        front,
        caller,
        kind=KIND_CHAT,
        group=group,
        body=body,
        stream=chat.is_stream,
        options=options,
        call_type="chat.completions",
        model=chat.model,
        max_tokens=chat.max_completion_tokens or chat.max_tokens,
        end_user=chat.user,
    )
    if guards is not None:
        guards.attach(relay, checked, caller, "chat")
    if pending is None:
        return await relay.run(request)
    pending.attach(relay, front.tasks)
    try:
        return await relay.run(request)
    finally:
        pending.settle(front.tasks)
