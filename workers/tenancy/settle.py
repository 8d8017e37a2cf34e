"""Settling a finished request (issue #17): the real cost replaces the reservation, the
lease is released, the tpm bucket is corrected to the real tokens, and one spend event is
appended to the ledger stream, all in one script queued with the worker's final record
(no round trip of its own). The reservation key is the guard: whoever settles first (the
worker that finished, the one that took over from a dead worker, the sweeper of expired
reservations) deletes it, and every later settlement of that request is a no-op, so no
request is counted twice and no spend event is written twice."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

from redis.asyncio.client import Pipeline

from workers.envelopes import DONE, RESPONSE, Envelope, Record
from workers.redis_streams import Keys, TenancyKeys
from workers.tenancy import events

log = logging.getLogger("switchboard.tenancy")

# KEYS[1] reservation, KEYS[2] in-flight set, KEYS[3] ledger, KEYS[4..] per scope: window,
# lease, spend. ARGV[1] request id, [2] cost, [3] tokens, [4] worker event, [5] the event
# field, [6] the worker field, [7] the field of the scopes whose soft budget this crossed
# (also returned; nil when the request was already settled), [8] the request id field.
SETTLE: Final = """
local h = redis.call('HMGET', KEYS[1], 'c', 'k', 's', 'e', 'f', 'b')
if not h[1] then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local reserved, est, sec = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
local cost, tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
local now = tonumber(redis.call('TIME')[1])
local flags, soft = {}, {}
for w in string.gmatch(h[5] or '', '%S+') do flags[#flags + 1] = w end
for w in string.gmatch(h[6] or '', '%S+') do soft[#soft + 1] = tonumber(w) end
local crossed = {}
local n = (#KEYS - 3) / 3
for i = 0, n - 1 do
  local win, lease, spend = KEYS[4 + 3 * i], KEYS[5 + 3 * i], KEYS[6 + 3 * i]
  local f = flags[i + 1] or '-'
  if string.find(f, 'w', 1, true) and tokens ~= est and now - sec < 60
      and redis.call('HEXISTS', win, 't' .. sec) == 1 then
    redis.call('HINCRBY', win, 't' .. sec, tokens - est)
  end
  if string.find(f, 'l', 1, true) then redis.call('ZREM', lease, ARGV[1]) end
  if redis.call('EXISTS', spend) == 1 then
    if reserved > 0 then redis.call('HINCRBYFLOAT', spend, 'r', -reserved) end
    if cost > 0 then
      local after = tonumber(redis.call('HINCRBYFLOAT', spend, 's', ARGV[2]))
      local sb = soft[i + 1] or -1
      if sb >= 0 and after >= sb and after - cost < sb then
        crossed[#crossed + 1] = string.match(spend, ':spend:(.*)$')
      end
    end
  end
end
redis.call('XADD', KEYS[3], '*', ARGV[8], ARGV[1], ARGV[5], h[4], ARGV[6], ARGV[4], ARGV[7],
  table.concat(crossed, ' '))
return crossed
"""


def worker_event(record: Record, end_ms: int) -> events.WorkerEvent:
    """The worker's half of the spend event, from the final record's bookkeeping."""
    meta = record.meta
    status = events.SUCCESS if record.end in (DONE, RESPONSE) else events.FAILURE
    if meta is None:
        return events.WorkerEvent(end_ms=end_ms, status=status)
    return events.WorkerEvent(
        end_ms=end_ms,
        status=status,
        deployment=meta.deployment or None,
        provider=meta.provider or None,
        prompt_tokens=meta.prompt_tokens,
        completion_tokens=meta.completion_tokens,
        spend=meta.cost_usd or 0.0,
    )


def script_call(
    tenancy: TenancyKeys, request_id: str, scopes: Sequence[str], event: events.WorkerEvent
) -> tuple[list[str], list[Any]]:
    script_keys = [tenancy.reservation(request_id), tenancy.inflight, tenancy.ledger]
    for scope in scopes:
        script_keys.extend(tenancy.scope_keys(scope))
    args = [
        request_id,
        repr(event.spend),
        event.prompt_tokens + event.completion_tokens,
        events.encode(event),
        TenancyKeys.EVENT_FIELD,
        TenancyKeys.WORKER_FIELD,
        TenancyKeys.SOFT_FIELD,
        TenancyKeys.REQUEST_FIELD,
    ]
    return script_keys, args


def queue(pipe: Pipeline, keys: Keys, envelope: Envelope, event: events.WorkerEvent) -> int:
    """Settle `envelope`'s request on a pipeline (workers.batching); 0 commands when it was
    admitted without tenancy (the master key on a gateway without a database)."""
    if envelope.scopes is None:
        return 0
    script_keys, args = script_call(keys.tenancy, envelope.request_id, envelope.scopes, event)
    pipe.eval(SETTLE, len(script_keys), *script_keys, *args)
    return 1


def report(request_id: str, result: Any) -> None:
    """Log what a settlement said: a failure (the reply is written; only the accounting
    missed, and the sweeper settles the reservation when it expires), or the soft budgets
    it crossed (the ledger writer counts those for the alert)."""
    if isinstance(result, Exception):
        log.warning("could not settle the spend of %s: %s", request_id, result)
    elif result:
        log.warning("request %s crossed the soft budget of %s", request_id, result)
