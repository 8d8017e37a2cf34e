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
from workers.redis_streams import Keys, TenancyKeys, finished_events
from workers.tenancy import events

log = logging.getLogger("switchboard.tenancy")

# KEYS[1] reservation, KEYS[2] in-flight set, KEYS[3] ledger, KEYS[4..] one hash per scope.
# ARGV[1] request id, [2] cost, [3] tokens, [4] worker event, [5] the event field, [6] the
# worker field, [7] the field of the scopes whose soft budget this crossed (also returned;
# nil when the request was already settled), [8] the request id field, [9] the field of the
# cost charged (ARGV[2], or the reservation when ARGV[2] is negative: CHARGE_RESERVATION),
# [10] the callbacks' field and [11] its value (issue #19; "" without callbacks), which is
# appended even when the request was already settled: the callbacks still get the event.
SETTLE: Final = """
local h = redis.call('HMGET', KEYS[1], 'c', 'k', 's', 'e', 'f', 'b')
if not h[1] then
  if ARGV[11] ~= '' then redis.call('XADD', KEYS[3], '*', ARGV[8], ARGV[1], ARGV[10], ARGV[11]) end
  return false
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local reserved, est, sec = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
local cost, tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
if cost < 0 then cost = reserved end
local flags, soft = {}, {}
for w in string.gmatch(h[5] or '', '%S+') do flags[#flags + 1] = w end
for w in string.gmatch(h[6] or '', '%S+') do soft[#soft + 1] = tonumber(w) end
local crossed = {}
for i = 1, #KEYS - 3 do
  local k = KEYS[3 + i]
  local f = flags[i] or '-'
  local s = redis.call('HMGET', k, 'S', 'V', 'P', 'T', 't' .. sec, 'o')
  if s[1] then
    local spent = tonumber(s[1]) + cost
    local w = {'S', string.format('%.17g', spent),
               'V', string.format('%.17g', math.max(0, (tonumber(s[2]) or 0) - reserved))}
    if string.find(f, 'l', 1, true) then
      w[#w + 1] = 'P'; w[#w + 1] = math.max(0, (tonumber(s[3]) or 0) - 1)
    end
    if string.find(f, 'w', 1, true) and tokens ~= est and s[5]
        and sec >= (tonumber(s[6]) or sec) then
      w[#w + 1] = 't' .. sec; w[#w + 1] = tonumber(s[5]) + tokens - est
      w[#w + 1] = 'T'; w[#w + 1] = (tonumber(s[4]) or 0) + tokens - est
    end
    redis.call('HSET', k, unpack(w))
    local sb = soft[i] or -1
    if cost > 0 and sb >= 0 and spent >= sb and spent - cost < sb then
      crossed[#crossed + 1] = string.match(k, ':scope:(.*)$')
    end
  end
end
local entry = {ARGV[8], ARGV[1], ARGV[5], h[4], ARGV[6], ARGV[4], ARGV[7],
  table.concat(crossed, ' '), ARGV[9], string.format('%.17g', cost)}
if ARGV[11] ~= '' then entry[#entry + 1] = ARGV[10]; entry[#entry + 1] = ARGV[11] end
redis.call('XADD', KEYS[3], '*', unpack(entry))
return crossed
"""


def worker_event(record: Record, end_ms: int, *, delivered: bool = False) -> events.WorkerEvent:
    """The worker's half of the spend event, from the final record's bookkeeping.

    A request that ends without a cost (its client left mid-stream, before the provider
    counted) after `delivered` output is charged its reservation (CHARGE_RESERVATION): an
    upper bound, where charging nothing would let a client spend past any budget by
    cancelling each stream before its end (LiteLLM #26672)."""
    meta = record.meta
    status = events.SUCCESS if record.end in (DONE, RESPONSE) else events.FAILURE
    charges_reservation = delivered and (meta is None or meta.cost_usd is None)
    if meta is None:
        spend = CHARGE_RESERVATION if charges_reservation else 0.0
        return events.WorkerEvent(end_ms=end_ms, status=status, spend=spend)
    # Charged its reservation or not, the row keeps where the request went and its tokens.
    return events.WorkerEvent(
        end_ms=end_ms,
        status=status,
        deployment=meta.deployment or None,
        provider=meta.provider or None,
        prompt_tokens=meta.prompt_tokens,
        completion_tokens=meta.completion_tokens,
        spend=CHARGE_RESERVATION if charges_reservation else meta.cost_usd or 0.0,
        lane=meta.lane,
        queue_wait_ms=meta.queue_wait_ms,
        attempts=tuple(meta.tried),
    )


# The spend that says: charge what was reserved (the script knows it, the worker not).
CHARGE_RESERVATION: Final = -1.0


def script_call(
    tenancy: TenancyKeys,
    request_id: str,
    scopes: Sequence[str],
    event: events.WorkerEvent,
    call: bytes = b"",
) -> tuple[list[str], list[Any]]:
    script_keys = [tenancy.reservation(request_id), tenancy.inflight, tenancy.ledger]
    for scope in scopes:
        script_keys.append(tenancy.scope(scope))
    args = [
        request_id,
        repr(event.spend),
        event.prompt_tokens + event.completion_tokens,
        events.encode(event),
        TenancyKeys.EVENT_FIELD,
        TenancyKeys.WORKER_FIELD,
        TenancyKeys.SOFT_FIELD,
        TenancyKeys.REQUEST_FIELD,
        TenancyKeys.CHARGED_FIELD,
        TenancyKeys.CALL_FIELD,
        call,
    ]
    return script_keys, args


def queue(
    pipe: Pipeline, keys: Keys, envelope: Envelope, event: events.WorkerEvent, call: bytes = b""
) -> int:
    """Settle `envelope`'s request on a pipeline (workers.batching); 0 commands when it was
    admitted without tenancy (the master key on a gateway without a database). `call`: the
    callbacks' event (issue #19), on the same stream entry, or on one of its own without
    tenancy (so the settlement, when there is one, is still the pipeline's last command)."""
    if envelope.scopes is None:
        if not call:
            return 0
        return finished_events.append_call(pipe, keys, envelope.request_id, call)
    script_keys, args = script_call(keys.tenancy, envelope.request_id, envelope.scopes, event, call)
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
