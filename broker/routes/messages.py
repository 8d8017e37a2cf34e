"""POST /v1/messages and /v1/messages/count_tokens: Anthropic's Messages API as a front door
(issue #18). Validated once (the Anthropic shape, then its chat translation under the same
request caps as chat), admitted, enqueued and relayed exactly as chat is; the worker
translates the body and writes the reply as Anthropic events (workers/ingress/). Errors
answer in Anthropic's shape (`broker.errors.anthropic_errors`)."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from aiohttp import web

from broker.body import decode, gateway_options, max_num_retries, read_json_body
from broker.errors import JSON, anthropic_errors
from broker.frontdoor import FrontDoor
from broker.relay import Relay
from broker.routes.keys import FRONT_DOOR
from workers.envelopes import INGRESS_MESSAGES, KIND_CHAT
from workers.errors import InvalidRequest
from workers.ingress.messages_request import decode_messages_request, to_chat_body
from workers.params import GATEWAY_FIELDS, GatewayOptions, unsupported
from workers.tokens import estimate_prompt_tokens
from workers.validation import decode_request, validate_chat_request
from workers.wire import ChatCompletionRequest, chat_request_from_dict

BETA_HEADER = "anthropic-beta"
# Tells a count_tokens caller the number is the gateway's estimate (workers/tokens.py), not
# a provider's tokenizer.
COUNT_HEADER = "x-switchboard-token-count"


def _chat_request(
    request: web.Request, front: FrontDoor, body: bytes, options: GatewayOptions
) -> ChatCompletionRequest:
    """The body's chat translation, checked as a chat request is."""
    drop = bool(options.drop_params)
    if request.headers.get(BETA_HEADER) and not drop:
        # Beta features need Anthropic's own API, which the translation does not reach.
        unsupported(BETA_HEADER, "the /v1/messages translation", "beta features", drop_params=drop)
    raw: dict[str, Any] = orjson.loads(body)
    for name in GATEWAY_FIELDS:
        raw.pop(name, None)
    chat_body = decode_request(lambda b: to_chat_body(b, drop_params=drop), raw)
    chat = decode_request(chat_request_from_dict, chat_body)
    validate_chat_request(chat, front.limits)
    return chat


@anthropic_errors
async def messages(request: web.Request) -> web.StreamResponse:
    front = request.app[FRONT_DOOR]
    caller = front.auth.check(request)
    body = await read_json_body(request, front.settings.max_body_bytes)
    parsed = decode(decode_messages_request, body)
    if parsed.max_tokens is None:
        raise InvalidRequest("`max_tokens` is required", param="max_tokens", code="invalid_value")
    options = gateway_options(
        body,
        max_timeout_s=front.settings.request_timeout_s,
        max_num_retries=max_num_retries(front.config),
    )
    _chat_request(request, front, body, options)
    group = front.resolve_group(parsed.model, caller)
    lane = front.lane_for(request, options)
    front.admit(lane)
    relay = Relay(
        front,
        kind=KIND_CHAT,
        group=group,
        lane=lane,
        body=body,
        stream=bool(parsed.stream),
        options=options,
        caller=caller,
        ingress=INGRESS_MESSAGES,
    )
    return await relay.run(request)


@anthropic_errors
async def count_tokens(request: web.Request) -> web.StreamResponse:
    """The gateway's own estimate, flagged as such in a header: no provider is called."""
    front = request.app[FRONT_DOOR]
    caller = front.auth.check(request)
    body = await read_json_body(request, front.settings.max_body_bytes)
    parsed = decode(decode_messages_request, body)
    options = gateway_options(
        body,
        max_timeout_s=front.settings.request_timeout_s,
        max_num_retries=max_num_retries(front.config),
    )
    chat = _chat_request(request, front, body, options)
    front.resolve_group(parsed.model, caller)
    tokens = estimate_prompt_tokens(chat)
    if chat.tools:
        tokens += len(msgspec.json.encode(chat.tools)) // 4
    return web.Response(
        body=orjson.dumps({"input_tokens": tokens}),
        content_type=JSON,
        headers={COUNT_HEADER: "estimate"},
    )
