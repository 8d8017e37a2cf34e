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
# The longest anthropic-beta value forwarded (a list of a few dozen feature names fits).
MAX_BETA_CHARS = 2048
# Tells a count_tokens caller the number is the gateway's estimate (workers/tokens.py), not
# a provider's tokenizer.
COUNT_HEADER = "x-switchboard-token-count"


def _chat_request(
    request: web.Request, front: FrontDoor, body: bytes, options: GatewayOptions
) -> ChatCompletionRequest:
    """The body's chat translation, checked as a chat request is."""
    drop = bool(options.drop_params)
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
    caller = await front.tenancy.authenticate(request)
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
    headers = _forwarded(request, front, group, options)
    lane = front.lane_for(request, options)
    front.admit(lane)
    ticket = await front.tenancy.ticket(
        caller,
        call_type="messages",
        model=parsed.model,
        group=group,
        body_bytes=len(body),
        max_tokens=parsed.max_tokens,
        end_user=_end_user(parsed.metadata),
    )
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
        headers=headers,
        ticket=ticket,
    )
    return await relay.run(request)


def _end_user(metadata: dict[str, Any] | None) -> str | None:
    """Anthropic's end user is `metadata.user_id`."""
    user = (metadata or {}).get("user_id")
    return user if isinstance(user, str) and user else None


def _forwarded(
    request: web.Request, front: FrontDoor, group: str, options: GatewayOptions
) -> dict[str, str] | None:
    """The headers an Anthropic deployment is sent as they came: `anthropic-beta`. Beta
    features need Anthropic's own API, so a group with another provider in it refuses them
    by name unless drop_params (a fallback group is not checked: its deployments are not
    known here)."""
    beta = request.headers.get(BETA_HEADER, "").strip()
    if not beta:
        return None
    providers = {d.provider for d in front.config.deployments.get(group, ())}
    if providers - {"anthropic"}:
        others = ", ".join(sorted(providers - {"anthropic"}))
        unsupported(
            BETA_HEADER,
            f"model group `{group}` ({others})",
            "beta features need Anthropic's own API",
            drop_params=bool(options.drop_params),
        )
        return None
    return {BETA_HEADER: beta[:MAX_BETA_CHARS]}


@anthropic_errors
async def count_tokens(request: web.Request) -> web.StreamResponse:
    """The gateway's own estimate, flagged as such in a header: no provider is called."""
    front = request.app[FRONT_DOOR]
    caller = await front.tenancy.authenticate(request)
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
