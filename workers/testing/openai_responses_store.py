"""The Responses API's stored responses, as OpenAI (and Azure) keep them, for the fake: a
response made with `store` (the default) is kept per account (the credential it came
with: two deployments with different keys are two accounts, which cannot see each other's
responses), so `previous_response_id`, `GET /responses/{id}`, `DELETE`, `input_items` and
`cancel` behave as the provider's do. A `background: true` response starts `queued` and
moves on one step per GET (`in_progress`, then `completed`); cancel stops it unless it
completed.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from workers.testing import openai_errors as errors
from workers.testing.responses import json_response
from workers.testing.state import FakeState, record_request

JSONObject = dict[str, Any]
Denied = Callable[[web.Request, FakeState], web.Response | None]
# A background response's status after each poll.
NEXT_STATUS = {"queued": "in_progress", "in_progress": "completed"}


class Kept:
    """One stored response: as it is now, as it ends, and its own input items."""

    __slots__ = ("now", "final", "input_items")

    def __init__(self, now: JSONObject, final: JSONObject, input_items: list[JSONObject]) -> None:
        self.now = now
        self.final = final
        self.input_items = input_items


def account_of(request: web.Request) -> str:
    """The credential a request came with: Azure's api-key, or the bearer token."""
    return request.headers.get("api-key") or request.headers.get("Authorization") or ""


def input_items_of(body: JSONObject) -> list[JSONObject]:
    given = body.get("input")
    if isinstance(given, str):
        given = [{"type": "message", "role": "user", "content": given}]
    items: list[JSONObject] = []
    for item in given if isinstance(given, list) else ():
        if isinstance(item, dict):
            listed = {"id": "msg_" + os.urandom(12).hex(), **item}
            if isinstance(listed.get("content"), str):
                listed["content"] = [{"type": "input_text", "text": listed["content"]}]
            items.append(listed)
    return items


def keep(
    state: FakeState, request: web.Request, body: JSONObject, now: JSONObject, final: JSONObject
) -> None:
    if body.get("store") is False:
        return
    key = (account_of(request), str(final["id"]))
    state.kept_responses[key] = Kept(now, final, input_items_of(body))


def missing_parent(state: FakeState, request: web.Request, body: JSONObject) -> web.Response | None:
    """OpenAI's 400 for a `previous_response_id` this account does not have."""
    parent = body.get("previous_response_id")
    if parent is None or (account_of(request), str(parent)) in state.kept_responses:
        return None
    return errors.error_response(
        400,
        f"Previous response with id '{parent}' not found.",
        param="previous_response_id",
        code="previous_response_not_found",
    )


def _not_found(response_id: str) -> web.Response:
    return errors.error_response(
        404, f"Response with id '{response_id}' not found.", param="response_id"
    )


Answer = Callable[[FakeState, web.Request, str, Kept], web.Response]


def _retrieve(state: FakeState, request: web.Request, response_id: str, kept: Kept) -> web.Response:
    shown = kept.now
    following = NEXT_STATUS.get(str(kept.now["status"]))
    if following == "completed":
        kept.now = kept.final
    elif following is not None:
        kept.now = {**kept.now, "status": following}
    return json_response(orjson.dumps(shown))


def _delete(state: FakeState, request: web.Request, response_id: str, kept: Kept) -> web.Response:
    del state.kept_responses[(account_of(request), response_id)]
    deleted = {"id": response_id, "object": "response", "deleted": True}
    return json_response(orjson.dumps(deleted))


def _input_items(
    state: FakeState, request: web.Request, response_id: str, kept: Kept
) -> web.Response:
    items = list(kept.input_items)
    if request.query.get("order", "desc") == "desc":
        items.reverse()
    listed = {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": False,
    }
    return json_response(orjson.dumps(listed))


def _cancel(state: FakeState, request: web.Request, response_id: str, kept: Kept) -> web.Response:
    if not kept.now.get("background"):
        return errors.invalid_request(
            "Only responses created with background=true can be cancelled."
        )
    if kept.now["status"] == "completed":
        return errors.invalid_request("Cannot cancel a completed response.")
    kept.now = kept.final = {**kept.now, "status": "cancelled"}
    return json_response(orjson.dumps(kept.now))


def _handler(
    state: FakeState, denied: Denied, answer: Answer
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        await record_request(request, state)
        refused = denied(request, state)
        if refused is not None:
            return refused
        response_id = request.match_info["response_id"]
        kept = state.kept_responses.get((account_of(request), response_id))
        if kept is None:
            return _not_found(response_id)
        return answer(state, request, response_id, kept)

    return handle


def routes(prefix: str, state: FakeState, denied: Denied) -> list[web.RouteDef]:
    """GET, DELETE, input_items and cancel under `prefix` (`/v1`, `/openai`, ...)."""
    one = prefix + "/responses/{response_id}"
    return [
        web.get(one, _handler(state, denied, _retrieve)),
        web.delete(one, _handler(state, denied, _delete)),
        web.get(one + "/input_items", _handler(state, denied, _input_items)),
        web.post(one + "/cancel", _handler(state, denied, _cancel)),
    ]
