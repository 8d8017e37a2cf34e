"""The OpenAI Responses API as a front door (issue #18): POST /v1/responses (validated
once, admitted, enqueued and relayed exactly as chat; the worker translates and stores,
workers/ingress/), and the stored responses' GET, DELETE and input_items, read straight
from Redis (workers/ingress/response_store.py) on any front door, or, for a response a
provider holds, from that deployment (broker/routes/responses_held.py), as is cancel."""

from __future__ import annotations

import orjson
from aiohttp import web

from broker.body import decode, json_object, read_json_body
from broker.errors import JSON
from broker.relay import Relay
from broker.routes import responses_background, responses_held
from broker.routes.admitted import admitted_relay, request_options
from broker.routes.hooked import run_hooked
from broker.routes.keys import FRONT_DOOR
from broker.routes.messages import group_drops
from workers.envelopes import INGRESS_RESPONSES, KIND_CHAT
from workers.errors import InvalidRequest
from workers.ingress import response_store
from workers.ingress.responses_request import Translator, decode_responses_request
from workers.params import GATEWAY_FIELDS
from workers.providers.openai_responses import serves_natively
from workers.validation import decode_request, validate_chat_request
from workers.wire import chat_request_from_dict

MAX_LIST_LIMIT = 100


async def create_response(request: web.Request) -> web.StreamResponse:
    front = request.app[FRONT_DOOR]
    caller = await front.tenancy.authenticate(request)
    body = await read_json_body(request, front.settings.max_body_bytes)
    parsed = decode(decode_responses_request, body)
    options = request_options(front, body)
    raw = json_object(body)
    for name in GATEWAY_FIELDS:
        raw.pop(name, None)
    # The translation refuses what it cannot carry now; the conversation a
    # previous_response_id names is the worker's to read (one script, workers/ingress/).
    group = front.resolve_group(parsed.model, caller)
    # A request served natively (OpenAI, Azure) takes what the translation cannot carry
    # (built-in tools, background, ...): the provider judges its own API. That is a new
    # response in a group whose deployments are all native, or a follow-up of a response a
    # provider holds (it goes to that deployment; another key's id is a 404 here). A
    # follow-up of a gateway-stored response is translated, so it is checked as one.
    parent = parsed.previous_response_id
    if parent:
        is_native = await responses_held.holder(front, caller, parent) is not None
    else:
        deployments = front.config.deployments.get(group, ())
        is_native = bool(deployments) and all(serves_natively(d) for d in deployments)
    # Background where translated: the front door queues it and answers at once.
    background = bool(parsed.background) and not is_native
    checked = responses_background.check(parsed) if background else parsed
    drop = group_drops(front, group, options) or is_native
    translator = Translator(drop_params=drop)
    chat_body = decode_request(lambda b: translator.chat_body(checked, b, []), raw)
    if chat_body["messages"]:
        validate_chat_request(decode_request(chat_request_from_dict, chat_body), front.limits)
    elif not parent:
        raise InvalidRequest("`input` is required", param="input", code="invalid_value")

    async def admit(checked_body: bytes) -> Relay:
        return await admitted_relay(
            request,
            front,
            caller,
            kind=KIND_CHAT,
            group=group,
            body=checked_body,
            stream=bool(parsed.stream),
            options=options,
            ingress=INGRESS_RESPONSES,
            call_type="responses",
            model=parsed.model,
            max_tokens=parsed.max_output_tokens,
            end_user=parsed.user,
        )

    return await run_hooked(
        request,
        front,
        caller,
        kind="responses",
        body=body,
        group=group,
        admit=admit,
        stream=bool(parsed.stream),
        # A translated background response is answered at once, from the front door.
        start=(lambda relay: responses_background.start(request, front, caller, parsed, relay))
        if background
        else None,
    )


async def get_response(request: web.Request) -> web.StreamResponse:
    front = request.app[FRONT_DOOR]
    caller = await front.tenancy.authenticate(request)
    response_id = request.match_info["response_id"]
    held_by = await responses_held.holder(front, caller, response_id)
    if held_by is not None:
        return await responses_held.forward(request, front, caller, held_by, response_id)
    if request.query.get("stream") == "true":
        return await responses_background.stream(request, front, caller, response_id)
    body = await response_store.response_body(front.redis, front.keys, response_id, caller.owner)
    return web.Response(body=body, content_type=JSON)


async def delete_response(request: web.Request) -> web.StreamResponse:
    front = request.app[FRONT_DOOR]
    caller = await front.tenancy.authenticate(request)
    response_id = request.match_info["response_id"]
    held_by = await responses_held.holder(front, caller, response_id)
    if held_by is not None:
        reply = await responses_held.forward(request, front, caller, held_by, response_id)
        if reply.status < 300:
            await response_store.forget_provider_id(front.redis, front.keys, response_id)
        return reply
    await response_store.delete(front.redis, front.keys, response_id, caller.owner)
    deleted = {"id": response_id, "object": "response", "deleted": True}
    return web.Response(body=orjson.dumps(deleted), content_type=JSON)


async def cancel_response(request: web.Request) -> web.StreamResponse:
    """Cancel a background response: at the deployment holding it when a native one runs
    it, else in the queue (broker/routes/responses_background.py)."""
    front = request.app[FRONT_DOOR]
    caller = await front.tenancy.authenticate(request)
    response_id = request.match_info["response_id"]
    held_by = await responses_held.holder(front, caller, response_id)
    if held_by is not None:
        return await responses_held.forward(request, front, caller, held_by, response_id, "/cancel")
    return await responses_background.cancel(front, caller, response_id)


async def list_input_items(request: web.Request) -> web.StreamResponse:
    """A response's own input items, as OpenAI pages them: `order` (desc by default),
    `limit` (20, at most 100) and `after` (an item id)."""
    front = request.app[FRONT_DOOR]
    caller = await front.tenancy.authenticate(request)
    response_id = request.match_info["response_id"]
    order, limit, after = _page(request)
    held_by = await responses_held.holder(front, caller, response_id)
    if held_by is not None:
        return await responses_held.forward(
            request, front, caller, held_by, response_id, "/input_items"
        )
    items = await response_store.input_items(front.redis, front.keys, response_id, caller.owner)
    if order == "desc":
        items.reverse()
    if after is not None:
        ids = [item.get("id") for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    page = items[:limit]
    listed = {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": len(items) > limit,
    }
    return web.Response(body=orjson.dumps(listed), content_type=JSON)


def _page(request: web.Request) -> tuple[str, int, str | None]:
    query = request.query
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise InvalidRequest("`order` must be asc or desc", param="order", code="invalid_value")
    text = query.get("limit", "20")
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIST_LIMIT:
        raise InvalidRequest(
            f"`limit` must be an integer from 1 to {MAX_LIST_LIMIT}",
            param="limit",
            code="invalid_value",
        )
    return order, int(text), query.get("after")
