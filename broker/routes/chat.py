"""POST /v1/chat/completions: validate once, admit, enqueue, relay."""

from __future__ import annotations

from aiohttp import web

from broker.body import decode, read_json_body
from broker.relay import Relay
from broker.routes.admitted import admitted_relay, request_options
from broker.routes.hooked import run_hooked
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

    async def admit(checked_body: bytes) -> Relay:
        return await admitted_relay(
            request,
            front,
            caller,
            kind=KIND_CHAT,
            group=group,
            body=checked_body,
            stream=chat.is_stream,
            options=options,
            call_type="chat.completions",
            model=chat.model,
            max_tokens=chat.max_completion_tokens or chat.max_tokens,
            end_user=chat.user,
        )

    return await run_hooked(
        request,
        front,
        caller,
        kind="chat",
        body=body,
        group=group,
        admit=admit,
        stream=chat.is_stream,
        include_usage=chat.include_usage,
    )
