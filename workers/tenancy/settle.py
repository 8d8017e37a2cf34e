"""Settling a finished request (issue #17): the real cost replaces the reservation, the
lease is released, the tpm bucket is corrected to the real tokens, and one spend event is
appended to the ledger stream, all in one script queued with the worker's final record
(no round trip of its own). The reservation key is the guard: whoever settles first (the
worker that finished, the one that took over from a dead worker, the sweeper of expired
reservations) deletes it, and every later settlement of that request is a no-op, so no
request is counted twice and no spend event is written twice."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from workers import accounting
from workers.deployment import Deployment
from workers.envelopes import DONE, RESPONSE, Envelope, Meta, Record
from workers.redis_streams import GROUP, Keys, TenancyKeys, finished_events
from workers.tenancy import events
from workers.wire import ChatCompletionChunk, Usage

log = logging.getLogger("switchboard.tenancy")

# The gateway's estimate of a token in bytes (as admission's).
BYTES_PER_TOKEN: Final = 4

# KEYS[1] reservation, KEYS[2] in-flight set, KEYS[3] ledger, KEYS[4..3+n] one hash per
# scope, its counters and its window's buckets (workers/tenancy/admission.py; one HMGET and
# one HSET each) (RELEASE_UNSTARTED: then the lane last). ARGV[1]
# request id, [2] cost, [3] tokens, [4] worker event, [5] the event field, [6] the worker
# field, [7] the field of the scopes whose soft budget this crossed (also returned; nil
# when the request was already settled), [8] the request id field, [9] the field of the
# cost charged (ARGV[2], or the reservation when ARGV[2] is negative: CHARGE_RESERVATION),
# [10] the callbacks' field and [11] its value (issue #19; "" without callbacks), which is
# appended even when the request was already settled: the callbacks still get the event;
# RELEASE_UNSTARTED: [12] the lane's group, [13] the request's entry.
_SETTLE_BODY = """
local h = redis.call('HMGET', KEYS[1], 'c', 'k', 's', 'e', 'g', 'm', 'f', 'b')
if not h[1] then
  if ARGV[11] ~= '' then redis.call('XADD', KEYS[3], '*', ARGV[8], ARGV[1], ARGV[10], ARGV[11]) end
  return false
end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
local reserved, est, sec = tonumber(h[1]), tonumber(h[2]), tonumber(h[3])
local cost, tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
if cost < 0 then cost = reserved end
-- Each scope's flags, a digit (1: counted in a window, +2: holds a lease), and soft budgets.
local flags, soft = h[5], {}
if flags then
  if h[6] and h[6] ~= '' then soft = cmsgpack.unpack(h[6]) end
else
  -- A reservation of the earlier layout (admitted before an upgrade): words and text.
  flags = ''
  for w in string.gmatch(h[7] or '', '%S+') do
    local d = (string.find(w, 'w', 1, true) and 1 or 0) + (string.find(w, 'l', 1, true) and 2 or 0)
    flags = flags .. d
  end
  for w in string.gmatch(h[8] or '', '%S+') do soft[#soft + 1] = tonumber(w) end
end
local crossed = {}
local n = #KEYS - 3 - LANE_KEYS
local tsec = 't' .. sec
for i = 1, n do
  local k = KEYS[3 + i]
  local f = (string.byte(flags, i) or 48) - 48
  local s = redis.call('HMGET', k, 'S', 'V', 'P', 'T', 'O', tsec)
  if s[1] then
    local spent = tonumber(s[1]) + cost
    local w = {'S', spent, 'V', math.max(0, (tonumber(s[2]) or 0) - reserved)}
    if f >= 2 then
      w[#w + 1] = 'P'; w[#w + 1] = math.max(0, (tonumber(s[3]) or 0) - 1)
    end
    -- The bucket is corrected while it is in the window (expiring it subtracted it).
    if f % 2 == 1 and tokens ~= est and sec >= (tonumber(s[5]) or sec) then
      w[#w + 1] = tsec; w[#w + 1] = (tonumber(s[6]) or 0) + tokens - est
      w[#w + 1] = 'T'; w[#w + 1] = (tonumber(s[4]) or 0) + tokens - est
    end
    redis.call('HSET', k, unpack(w))
    local sb = soft[i] or -1
    if cost > 0 and sb >= 0 and spent >= sb and spent - cost < sb then
      crossed[#crossed + 1] = string.match(k, ':sc:(.*)$')
    end
  end
end
local entry = {ARGV[8], ARGV[1], ARGV[5], h[4], ARGV[6], ARGV[4], ARGV[7],
  table.concat(crossed, ' '), ARGV[9], cost}
if ARGV[11] ~= '' then entry[#entry + 1] = ARGV[10]; entry[#entry + 1] = ARGV[11] end
redis.call('XADD', KEYS[3], '*', unpack(entry))
return crossed
"""
SETTLE: Final = "local LANE_KEYS = 0\n" + _SETTLE_BODY
# A request its client left before any worker read it (its entry is in no worker's pending
# list): settled at once at no cost, so its lease and reservation do not wait for a worker
# to reach the entry (or for the sweep, when none is running). An entry a worker holds is
# left to that worker, which settles what it produced when the cancellation reaches it.
RELEASE_UNSTARTED: Final = (
    """local LANE_KEYS = 1
if #redis.call('XPENDING', KEYS[#KEYS], ARGV[12], ARGV[13], ARGV[13], 1) > 0 then
  return false
end
"""
    + _SETTLE_BODY
)


def worker_event(record: Record, end_ms: int, *, delivered: bool = False) -> events.WorkerEvent:
    """The worker's half of the spend event, from the final record's bookkeeping.

    A request that ended unfinished (cancelled, failed) after `delivered` output and without
    a cost (the executor estimates what a stream produced, `Produced`; a path that could
    not) is charged its reservation (CHARGE_RESERVATION): an upper bound, where charging
    nothing would let a client spend past any budget by cancelling each stream before its
    end (LiteLLM #26672). A finished request costs what its record says (0 when its
    deployment has no price, as in LiteLLM)."""
    meta = record.meta
    is_finished = record.end in (DONE, RESPONSE)
    status = events.SUCCESS if is_finished else events.FAILURE
    charges_reservation = delivered and not is_finished and (meta is None or meta.cost_usd is None)
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
        worker=meta.worker,
    )


class Produced:
    """What a stream's provider produced so far, counted as its batches are relayed, so a
    stream its client cancels is charged what it cost (its prompt and the completion so
    far, estimated at the gateway's 4 bytes a token) rather than its whole reservation."""

    __slots__ = ("deployment", "prompt_tokens", "completion_chars")

    def __init__(self, deployment: Deployment, prompt_bytes: int) -> None:
        self.deployment = deployment
        self.prompt_tokens = prompt_bytes // BYTES_PER_TOKEN + 1
        self.completion_chars = 0

    def add(self, batch: Sequence[ChatCompletionChunk]) -> None:
        chars = 0
        for chunk in batch:
            for choice in chunk.choices:
                delta = choice.delta
                chars += len(delta.content or "") + len(delta.reasoning_content or "")
                for call in delta.tool_calls or ():
                    if call.function is not None:
                        chars += len(call.function.arguments or "")
        self.completion_chars += chars

    def meta(self, worker: str) -> Meta:
        """The cancelled stream's bookkeeping: its estimated usage and what that cost (0 on
        a deployment without a price, as a finished request there)."""
        completion = -(-self.completion_chars // BYTES_PER_TOKEN)
        usage = Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=completion,
            total_tokens=self.prompt_tokens + completion,
        )
        cost = accounting.cost_for(usage, self.deployment).cost_usd
        return Meta(
            deployment=self.deployment.label,
            provider=self.deployment.provider,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=completion,
            cost_usd=cost or 0.0,
            worker=worker,
            estimated_tokens=usage.total_tokens,
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


def is_needed(envelope: Envelope, call: bytes = b"") -> bool:
    """Whether `queue` would queue anything: no tenancy and no callbacks' event is nothing
    to settle, and then the event need not even be made (issue #22)."""
    return envelope.scopes is not None or bool(call)


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


async def release_unstarted(redis: Redis, keys: Keys, envelope: Envelope, entry: bytes) -> bool:
    """Settle, at no cost, a request its client left before any worker read its entry
    (RELEASE_UNSTARTED); whether it did. One round trip, off the latency path."""
    if envelope.scopes is None:
        return False
    script_keys, args = script_call(
        keys.tenancy,
        envelope.request_id,
        envelope.scopes,
        events.WorkerEvent(end_ms=int(time.time() * 1000), status=events.FAILURE),
    )
    script_keys.append(keys.lane(envelope.lane))
    args += [GROUP, entry]
    result = await redis.eval(RELEASE_UNSTARTED, len(script_keys), *script_keys, *args)  # type: ignore[misc]  # redis-py's sync-or-async union
    return result is not None
