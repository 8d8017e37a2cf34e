"""Stored /v1/responses responses in Redis (issue #18): what `previous_response_id`, GET,
DELETE and input_items read, kept `responses_ttl_s` (30 days by default).

One hash per response: its owner (a hash of the caller's key, never the key), its parent,
the deployment that served it, its own input items, its output items and the response
object, each item list as JSON. A conversation is never copied into each turn (memory would
grow with the square of its length); instead a response id carries its conversation's tag,
`resp_<conversation 16 hex><own 16 hex>`, every response of a chain lives in that tag's
slot, and one script walks the chain from the newest response to the root: a follow-up is
rebuilt in one round trip, on any front door or worker, Redis Cluster included. Memory is
the items themselves (what the clients sent and got) for `responses_ttl_s`; `store: false`
keeps nothing. The key names are workers/redis_streams/'s (`Keys.response`).
"""

from __future__ import annotations

import os
import re
from typing import Any, NamedTuple, cast

import orjson
from redis.asyncio import Redis

from workers.errors import NotFound
from workers.ingress.responses_request import holds_encrypted_reasoning
from workers.redis_streams import Keys

JSONObject = dict[str, Any]
ID_PATTERN = re.compile(r"resp_[0-9a-f]{32}")
# A provider's response id as it may be looked up (OpenAI's are `resp_` and 48 hex, Azure's
# `resp_` and 32): anything else is not one, and not worth a round trip.
PROVIDER_ID_PATTERN = re.compile(r"resp_[A-Za-z0-9_-]{8,200}")
# A chain longer than this is cut at its oldest end (a loop of a few hundred turns is long).
MAX_CHAIN = 1000

# KEYS[1] the newest response; ARGV: the conversation's key prefix, the owner, the hop cap.
# Returns the newest response's deployment, then output, input, output, input, ... newest
# first; {} when the first is not found or not the caller's. Every key of a chain shares
# KEYS[1]'s slot (see the module docstring).
CHAIN_SCRIPT = """
local items = {redis.call('HGET', KEYS[1], 'deployment') or ''}
local key = KEYS[1]
for i = 1, tonumber(ARGV[3]) do
  local f = redis.call('HMGET', key, 'owner', 'parent', 'input', 'output')
  if not f[1] or f[1] ~= ARGV[2] then
    if i == 1 then return {} end
    break
  end
  table.insert(items, f[4])
  table.insert(items, f[3])
  if not f[2] or f[2] == '' then break end
  key = ARGV[1] .. f[2]
end
return items
"""


# A background response's statuses (OpenAI's): it is saved `queued` by the front door, then
# `in_progress`, then one of the final three; a final status is never overwritten, so a
# cancel and the worker's answer cannot both win.
FINAL_STATUSES = ("completed", "failed", "cancelled", "incomplete")

# KEYS[1] the response; ARGV[1] its TTL, ARGV[2] the new status, then field/value pairs.
# Refused (0) when the stored status is final.
SAVE_BACKGROUND_SCRIPT = """
local now = redis.call('HGET', KEYS[1], 'status')
if now == 'completed' or now == 'failed' or now == 'cancelled' or now == 'incomplete' then
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[2], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""
# KEYS[1] the response; ARGV: the owner, the cancelled response object. Returns the outcome:
# 'cancelled', 'not_found', 'not_background' or the final status it already had.
CANCEL_SCRIPT = """
local f = redis.call('HMGET', KEYS[1], 'owner', 'request', 'status')
if not f[1] or f[1] ~= ARGV[1] then return 'not_found' end
if not f[2] then return 'not_background' end
if f[3] ~= 'queued' and f[3] ~= 'in_progress' then return f[3] end
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'response', ARGV[2])
return 'cancelled'
"""


def new_response_id(parent: str | None) -> str:
    """A fresh id in its parent's conversation, or in a new one."""
    conversation = parent[5:21] if parent else os.urandom(8).hex()
    return f"resp_{conversation}{os.urandom(8).hex()}"


def _not_found(response_id: str) -> NotFound:
    shown = response_id[:64]
    return NotFound(
        f"Response with id '{shown}' not found.", param="response_id", code="response_not_found"
    )


def _checked(response_id: str) -> str:
    if not ID_PATTERN.fullmatch(response_id):
        raise _not_found(response_id)
    return response_id


class Conversation(NamedTuple):
    items: list[JSONObject]  # oldest first: each response's input, then its output
    deployment: str  # the deployment that served the newest response
    # Whether the newest response's output holds encrypted reasoning (its deployment's).
    holds_reasoning: bool = False


async def conversation(redis: Redis, keys: Keys, response_id: str, owner: str) -> Conversation:
    """The chain ending at `response_id`. A 404 when it is unknown, expired, or another
    key's."""
    key = keys.response(_checked(response_id))
    prefix = keys.responses(response_id[5:21])
    found = await cast("Any", redis.eval(CHAIN_SCRIPT, 1, key, prefix, owner, MAX_CHAIN))
    if len(found) < 2:  # the deployment alone: the response was not found
        raise _not_found(response_id)
    items: list[JSONObject] = []
    for raw in reversed(found[2:]):
        items += orjson.loads(raw)
    newest_output = orjson.loads(found[1])
    items += newest_output
    return Conversation(items, bytes(found[0]).decode(), holds_encrypted_reasoning(newest_output))


async def save(
    redis: Redis,
    keys: Keys,
    *,
    response: JSONObject,
    owner: str,
    parent: str | None,
    deployment: str,
    input_items: list[JSONObject],
    ttl_s: int,
) -> None:
    key = keys.response(response["id"])
    fields = {
        "owner": owner,
        "parent": parent or "",
        "deployment": deployment,
        "input": orjson.dumps(input_items),
        "output": orjson.dumps(response["output"]),
        "response": orjson.dumps(response),
    }
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(key, mapping=fields)
        pipe.expire(key, ttl_s)
        await pipe.execute()


async def save_background(
    redis: Redis,
    keys: Keys,
    *,
    response: JSONObject,
    owner: str,
    parent: str | None,
    status: str,
    ttl_s: int,
    request_id: str = "",
    deployment: str = "",
    input_items: list[JSONObject] | None = None,
    is_streamed: bool = False,
) -> bool:
    """Save a background response at `status` unless it already reached a final one;
    whether it was saved. The front door's first save (`queued`) names the request that
    runs it, which a cancel cancels, and whether it streams (its events then stay in that
    request's reply stream, where `GET ?stream=true` reads them)."""
    fields: dict[str, str | bytes] = {
        "owner": owner,
        "parent": parent or "",
        "response": orjson.dumps(response),
        "output": orjson.dumps(response.get("output") or []),
    }
    if request_id:
        fields["request"] = request_id
    if is_streamed:
        fields["streamed"] = "1"
    if deployment:
        fields["deployment"] = deployment
    if input_items is not None:
        fields["input"] = orjson.dumps(input_items)
    elif status == "queued":
        fields["input"] = b"[]"
    pairs = [part for item in fields.items() for part in item]
    key = keys.response(response["id"])
    saved = await cast("Any", redis.eval(SAVE_BACKGROUND_SCRIPT, 1, key, ttl_s, status, *pairs))
    return bool(saved)


async def cancel_background(
    redis: Redis, keys: Keys, response_id: str, owner: str
) -> tuple[str, JSONObject, str]:
    """Cancel a background response: (the outcome, the response as it now is, the request
    that runs it). The outcome is `cancelled`, `not_background`, or the final status it
    already had; a 404 when it is unknown or another key's."""
    key = keys.response(_checked(response_id))
    stored_owner, request_id, raw = await cast(
        "Any", redis.hmget(key, ["owner", "request", "response"])
    )
    if stored_owner is None or stored_owner.decode() != owner or raw is None:
        raise _not_found(response_id)
    response: JSONObject = orjson.loads(raw)
    cancelled = {**response, "status": "cancelled"}
    outcome = await cast("Any", redis.eval(CANCEL_SCRIPT, 1, key, owner, orjson.dumps(cancelled)))
    outcome = outcome.decode() if isinstance(outcome, bytes) else str(outcome)
    if outcome == "not_found":
        raise _not_found(response_id)
    shown = cancelled if outcome == "cancelled" else response
    return outcome, shown, request_id.decode() if request_id else ""


async def streamed_background(
    redis: Redis, keys: Keys, response_id: str, owner: str
) -> tuple[str, str] | None:
    """(the request that runs it, its status) for a background response created with
    `stream: true`, None for any other response; a 404 when unknown or another key's."""
    key = keys.response(_checked(response_id))
    stored_owner, request_id, status, streamed = await cast(
        "Any", redis.hmget(key, ["owner", "request", "status", "streamed"])
    )
    if stored_owner is None or stored_owner.decode() != owner:
        raise _not_found(response_id)
    if not (request_id and streamed):
        return None
    return request_id.decode(), (status or b"").decode()


async def _field(redis: Redis, keys: Keys, response_id: str, owner: str, name: str) -> bytes:
    key = keys.response(_checked(response_id))
    stored_owner, value = await cast("Any", redis.hmget(key, ["owner", name]))
    if stored_owner is None or stored_owner.decode() != owner or value is None:
        raise _not_found(response_id)
    return cast(bytes, value)


async def response_body(redis: Redis, keys: Keys, response_id: str, owner: str) -> bytes:
    return await _field(redis, keys, response_id, owner, "response")


async def input_items(redis: Redis, keys: Keys, response_id: str, owner: str) -> list[JSONObject]:
    items: list[JSONObject] = orjson.loads(await _field(redis, keys, response_id, owner, "input"))
    return items


# ------------------------------------------------------------ provider-made response ids
# A native reply's id is the provider's, and the provider keeps the response: the gateway
# keeps only whose it is and which deployment holds it, so another key's id is a 404 and a
# follow-up, GET, DELETE, input_items or cancel goes to the deployment that has it.


async def save_provider_id(
    redis: Redis, keys: Keys, response_id: str, *, owner: str, deployment: str, ttl_s: int
) -> None:
    key = keys.provider_response(response_id)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.hset(key, mapping={"owner": owner, "deployment": deployment})
        pipe.expire(key, ttl_s)
        await pipe.execute()


async def provider_deployment(redis: Redis, keys: Keys, response_id: str, owner: str) -> str | None:
    """The deployment that holds a provider-made response of `owner`'s; None when the id is
    not a provider's the gateway relayed; a 404 when it is another key's."""
    if not PROVIDER_ID_PATTERN.fullmatch(response_id):
        return None
    key = keys.provider_response(response_id)
    stored_owner, deployment = await cast("Any", redis.hmget(key, ["owner", "deployment"]))
    if stored_owner is None:
        return None
    if stored_owner.decode() != owner or deployment is None:
        raise _not_found(response_id)
    return cast(bytes, deployment).decode()


async def forget_provider_id(redis: Redis, keys: Keys, response_id: str) -> None:
    await redis.delete(keys.provider_response(response_id))


async def delete(redis: Redis, keys: Keys, response_id: str, owner: str) -> None:
    await _field(redis, keys, response_id, owner, "owner")
    await redis.delete(keys.response(response_id))
