"""`background: true` on the translated /v1/responses path (issue #18): the front door gives
the response its id, stores it `queued` (workers/ingress/response_store.py), enqueues the
request and answers at once; the worker runs it as any request (same queue, limits and
spend), stores it `in_progress`, then `completed` or `failed`; `GET` polls the store and
`POST /v1/responses/{id}/cancel` cancels the queued request (the queue's cancellation, as
for a client that left) and stores it `cancelled`. A final status is never overwritten, so
a cancel and the worker's answer cannot both win. (A native deployment runs background
responses itself: broker/routes/responses_held.py.)"""

from __future__ import annotations

import time

import msgspec
import orjson
from aiohttp import web

from broker.auth import Caller
from broker.errors import JSON
from broker.frontdoor import FrontDoor
from broker.relay import Relay
from broker.routes.resume import follow_reply
from workers.errors import InvalidRequest
from workers.ingress import response_store
from workers.ingress.responses_reply import ResponseBuilder
from workers.ingress.responses_request import ResponsesRequest


def check(parsed: ResponsesRequest) -> ResponsesRequest:
    """What a translated background request may not combine with; the request as the
    translation checks it (the flag itself is this module's)."""
    if not parsed.is_stored:
        raise InvalidRequest(
            "`background: true` needs `store: true`: the response is kept for polling",
            param="store",
            code="invalid_value",
        )
    return msgspec.structs.replace(parsed, background=None)


async def start(
    request: web.Request,
    front: FrontDoor,
    caller: Caller,
    parsed: ResponsesRequest,
    relay: Relay,
) -> web.StreamResponse:
    """Store the response queued and enqueue its request; answer `queued`, or with
    `stream: true` follow its events as they come (the client may leave and come back with
    GET ?stream=true&starting_after=N: the request runs on either way)."""
    parent = parsed.previous_response_id
    response_id = response_store.new_response_id(parent)
    builder = ResponseBuilder(parsed, response_id, int(time.time()))
    builder.background = True
    queued = builder.body("queued")
    relay.envelope = msgspec.structs.replace(relay.envelope, response_id=response_id)
    await response_store.save_background(
        front.redis,
        front.keys,
        response=queued,
        owner=caller.owner,
        parent=parent,
        status="queued",
        ttl_s=front.settings.responses_ttl_s,
        request_id=relay.request_id,
        is_streamed=bool(parsed.stream),
    )
    await relay.detach()
    if parsed.stream:
        return await follow_reply(
            request, relay.request_id, 0, is_background=True, must_exist=False
        )
    headers = {"x-request-id": relay.request_id}
    return web.Response(body=orjson.dumps(queued), content_type=JSON, headers=headers)


async def stream(
    request: web.Request, front: FrontDoor, caller: Caller, response_id: str
) -> web.StreamResponse:
    """GET /v1/responses/{id}?stream=true[&starting_after=N]: a streamed background
    response's events above sequence number N, then live until it ends. Its events are its
    request's reply stream, kept `reply_ttl_s` after it ends; the SSE ids there count from 1
    where sequence numbers count from 0."""
    after = _starting_after(request)
    found = await response_store.streamed_background(
        front.redis, front.keys, response_id, caller.owner
    )
    if found is None:
        raise InvalidRequest(
            "only a response created with `background: true` and `stream: true` can be "
            "streamed; GET it without `stream`",
            param="stream",
            code="invalid_value",
        )
    request_id, status = found
    is_final = status in response_store.FINAL_STATUSES
    return await follow_reply(
        request, request_id, after + 1, is_background=True, must_exist=is_final
    )


def _starting_after(request: web.Request) -> int:
    raw = request.query.get("starting_after", "-1")
    try:
        after = int(raw)
    except ValueError:
        after = -2
    if after < -1:
        raise InvalidRequest(
            "`starting_after` must be a sequence number (an integer from 0)",
            param="starting_after",
            code="invalid_value",
        )
    return after


async def cancel(front: FrontDoor, caller: Caller, response_id: str) -> web.Response:
    outcome, response, request_id = await response_store.cancel_background(
        front.redis, front.keys, response_id, caller.owner
    )
    if outcome == "not_background":
        raise InvalidRequest(
            "Only responses created with `background: true` can be cancelled.",
            param="response_id",
            code="invalid_value",
        )
    if outcome != "cancelled":
        raise InvalidRequest(
            f"Cannot cancel a response whose status is {outcome}.",
            param="response_id",
            code="invalid_value",
        )
    await front.cancel_now(request_id)
    return web.Response(body=orjson.dumps(response), content_type=JSON)
