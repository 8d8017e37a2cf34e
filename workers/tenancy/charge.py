"""Charging work that never passed admission (issue #20's native batches: the provider ran
the lines, not a worker): each line's cost is added to the spend of every scope the key
counts against, and one spend event goes to the ledger stream, in the shape the
settlement writes (workers/tenancy/settle.py), so the ledger writer makes the same spend
row. A set of the lines charged guards each line: charging a line again (a runner that
started over) is a no-op, like a second settlement of a request.

A budget seen spent before the batch is handed over (`spent_scopes`) stops it; lines
finished after that are charged all the same: the provider ran them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, Final

from redis.asyncio import Redis

from workers.redis_streams import TenancyKeys
from workers.tenancy import admission, events
from workers.tenancy.admission import Scope

# A batch's guard outlives any batch window (7 days at most) with room to spare.
GUARD_TTL_S = 30 * 86400

# KEYS[1] the guard set, KEYS[2] the ledger, KEYS[3..] one hash per scope.
# ARGV[1] the line's member in the guard, [2] request id, [3] cost, [4] front event,
# [5] worker event, [6] event field, [7] worker field, [8] request id field, [9] charged
# field, [10] guard ttl, then per scope "seed spend, period end, next period end" as the
# admission script takes them: a counter Redis does not hold yet starts from the
# database's spend, and one whose period ended starts again, as admission would.
CHARGE: Final = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[10]))
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cost = tonumber(ARGV[3])
for i = 3, #KEYS do
  local v = {}
  for x in string.gmatch(ARGV[8 + i], '%S+') do v[#v + 1] = x end
  local h = redis.call('HMGET', KEYS[i], 'S', 'E')
  local spent, ends = tonumber(h[1]), tonumber(h[2]) or -1
  if spent == nil then spent, ends = tonumber(v[1]), tonumber(v[2]) end
  if ends >= 0 and now >= ends then spent, ends = 0, tonumber(v[3]) end
  redis.call('HSET', KEYS[i], 'S', string.format('%.17g', spent + cost), 'E', ends)
end
redis.call('XADD', KEYS[2], '*', ARGV[8], ARGV[2], ARGV[6], ARGV[4], ARGV[7], ARGV[5],
  ARGV[9], string.format('%.17g', cost))
return 1
"""


async def charge_lines(
    redis: Redis,
    tkeys: TenancyKeys,
    batch_id: str,
    scopes: Sequence[Scope],
    front_event: bytes,
    charges: Sequence[tuple[str, str, events.WorkerEvent]],
) -> int:
    """Charge each (guard member, request id, worker event) once; how many were new."""
    if not charges:
        return 0
    script_keys = [tkeys.charged(batch_id), tkeys.ledger, *(tkeys.scope(s.name) for s in scopes)]
    now_s = time.time()
    per_scope = [_budget_args(scope, now_s) for scope in scopes]
    pipe = redis.pipeline(transaction=False)
    for member, request_id, event in charges:
        args: list[Any] = [
            member,
            request_id,
            repr(event.spend),
            front_event,
            events.encode(event),
            TenancyKeys.EVENT_FIELD,
            TenancyKeys.WORKER_FIELD,
            TenancyKeys.REQUEST_FIELD,
            TenancyKeys.CHARGED_FIELD,
            GUARD_TTL_S,
            *per_scope,
        ]
        pipe.eval(CHARGE, len(script_keys), *script_keys, *args)
    return sum(int(n) for n in await pipe.execute())


def _budget_args(scope: Scope, now_s: float) -> str:
    current, following = admission.budget_period(scope.limits, now_s)
    return f"{scope.seed_spend!r} {current} {following}"


async def spent_scopes(redis: Redis, tkeys: TenancyKeys, scopes: Sequence[Scope]) -> list[str]:
    """The scopes whose budget is already spent (their counter at or past the limit)."""
    limited = [s for s in scopes if s.limits.max_budget is not None]
    if not limited:
        return []
    pipe = redis.pipeline(transaction=False)
    for scope in limited:
        pipe.hmget(tkeys.scope(scope.name), ["S", "E"])
    counters: list[Any] = await pipe.execute()
    now_s = time.time()
    found = []
    for scope, (spent, period_end) in zip(limited, counters, strict=True):
        value = float(spent) if spent is not None else scope.seed_spend
        ends = float(period_end) if period_end is not None else None
        if ends is None and spent is None:
            ends = admission.budget_period(scope.limits, now_s)[0]
        if ends is not None and 0 <= ends <= now_s * 1000:
            value = 0.0  # the period ended: the next admission resets the counter
        if scope.limits.max_budget is not None and value >= scope.limits.max_budget:
            found.append(scope.name)
    return found
