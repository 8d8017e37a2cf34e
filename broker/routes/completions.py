"""POST /v1/completions: a legacy text completion, served as the chat request it becomes
(workers/text_completions.py) by any provider; stream and non-stream."""

from __future__ import annotations

import orjson
from aiohttp import web

from broker.body import decode, read_json_body
from broker.relay import Relay
from broker.routes.admitted import admitted_relay, request_options
from broker.routes.hooked import run_hooked
from broker.routes.keys import FRONT_DOOR
from workers.envelopes import KIND_TEXT_COMPLETION
from workers.text_completions import chat_body, decode_completion_request
from workers.validation import validate_chat_request
from workers.wire import decode_chat_request


async def completions(request: web.Request) -> web.StreamResponse:
    front = request.app[FRONT_DOOR]
    caller = await front.tenancy.authenticate(request)
    raw = await read_json_body(request, front.settings.max_body_bytes)
    completion = decode(decode_completion_request, raw)
    # decode() proved it a JSON object of this shape; the chat body keeps every other field.
    body = orjson.dumps(chat_body(orjson.loads(raw), completion))
    chat = decode(decode_chat_request, body)
    validate_chat_request(chat, front.limits)
    options = request_options(front, body)
    group = front.resolve_group(chat.model, caller)

    async def admit(checked_body: bytes) -> Relay:
        return await admitted_relay(
            request,
            front,
            caller,
            kind=KIND_TEXT_COMPLETION,
            group=group,
            body=checked_body,
            stream=chat.is_stream,
            options=options,
            call_type="text_completion",
            model=chat.model,
            max_tokens=chat.max_completion_tokens or chat.max_tokens,
            end_user=chat.user,
        )

    # The hooks see the chat body it became (guardrails read its one user message); the
    # cache keeps and replays the answer in the text completion shape.
    return await run_hooked(
        request,
        front,
        caller,
        kind="text_completion",
        body=body,
        group=group,
        admit=admit,
        stream=chat.is_stream,
        include_usage=chat.include_usage,
    )
