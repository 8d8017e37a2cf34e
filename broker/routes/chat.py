"""POST /v1/chat/completions: validate once, admit, enqueue, relay."""

from __future__ import annotations

from aiohttp import web

from broker.body import decode, gateway_options, max_num_retries, read_json_body
from broker.relay import Relay
from broker.routes.keys import FRONT_DOOR
from workers.envelopes import KIND_CHAT
from workers.validation import validate_chat_request
from workers.wire import decode_chat_request


async def chat_completions(request: web.Request) -> web.StreamResponse:
    front = request.app[FRONT_DOOR]
    caller = front.auth.check(request)
    body = await read_json_body(request, front.settings.max_body_bytes)
    chat = decode(decode_chat_request, body)
    validate_chat_request(chat, front.limits)
    options = gateway_options(
        body,
        max_timeout_s=front.settings.request_timeout_s,
        max_num_retries=max_num_retries(front.config),
    )
    group = front.resolve_group(chat.model, caller)
    lane = front.lane_for(request, options)
    front.admit(lane)
    relay = Relay(
        front,
        kind=KIND_CHAT,
        group=group,
        lane=lane,
        body=body,
        stream=chat.is_stream,
        options=options,
        caller=caller,
    )
    return await relay.run(request)
