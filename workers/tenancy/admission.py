"""Admission in one script (issue #17): every limit of every scope a request falls under
(key, team, user, team member, organization, customer, per-model, proxy-wide) is checked,
counted and, only if all pass, the request is XADDed to its lane, in one EVALSHA. So limits
hold exactly across any number of front doors (LiteLLM #40291, #18518: tpm kept in each
process's memory), and admission costs no round trip of its own: it replaces the XADD.

Each scope is one hash (`{ns}:{q}:t:sc:<scope>`), read with one HMGET and written with
one HSET however many of its limits are set:
- rpm and tpm are sliding 60 s windows of one-second buckets (`r<s>`, `t<s>`) with
  running totals (`R`, `T`), the oldest bucket (`O`) and the newest (`L`): an admission
  expires only the buckets that left the window since the last one, so its cost does not
  grow with the traffic. tpm counts the request's estimate at admission; the worker's
  settlement corrects its bucket and the total to the real tokens.
- `max_parallel_requests` is a count of leases (`P`), taken here and given back when the
  request settles: by the worker that answers it (the one that took it over from a dead
  worker included), or by the ledger writer's sweep once the request's deadline passed
  unsettled (no worker could finish it).
- a budget is spent `S`, reserved `V` and the period's end `E`. A request is admitted
  while spent + reserved is under the budget, and reserves its estimate; the settlement
  replaces the reservation with the real cost. So concurrent requests overspend by at
  most what is in flight. A period that ended resets `S` at the next admission (the
  check, not a timer, decides, so a budget resets also when no request came in between).
- the reservation (`res:<rid>`) keeps what the settlement needs: the reserved cost and
  tokens, the window second, each scope's flags (`g`, a digit per scope: 1 counted in a
  window, +2 holds a lease) and soft budget (`m`), and the front door's half of the spend
  event.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from redis.asyncio.client import Pipeline

from workers import durations
from workers.errors import BudgetExceeded, RateLimited
from workers.redis_streams import ENVELOPE_FIELD, Keys
from workers.tenancy.records import Limits

# KEYS[1] lane, KEYS[2] reservation, KEYS[3] in-flight set, KEYS[4..3+n] one hash per
# scope, KEYS[4+n] the mirror-filled marker (below).
# ARGV[1] envelope, [2] request id, [3] tokens, [4] cost, [5] lease ms, [6] event,
# [7] envelope field, [8] the scope names (msgpack, for the sweeper), [9] the soft budgets
# (a msgpack array, one per scope; "" when no scope has one), then one argument per scope,
# a msgpack array: rpm, tpm, parallel, budget, seed spend, period end (ms), next period end
# (ms) (one argument, not seven: redis-py's packing costs per argument; msgpack, not text:
# cmsgpack decodes it in C where string.gmatch and tonumber cost more than a redis.call),
# then ARGV[10+n] (below). -1 means "no limit". Numbers go to redis.call as Lua numbers,
# which Redis writes with %.17g itself (string.format did the same, at a Lua call's cost).
# Each scope costs one HMGET and one HSET of its hash, whatever limits it has (and,
# once a second at most with rpm or tpm, an HMGET and HDEL of the buckets that left the
# window). A window's buckets live in the scope's hash beside its counters, so that the
# HMGET reads the current second's and the HSET writes it, rather than a key of their own
# and two HINCRBYs (benchmarks/tenancy_instructions.py counts what each costs). A hash of
# ~130 fields kept as a listpack is scanned field by field at every access: the first
# admission of a window writes a value
# longer than hash-max-listpack-value (64 by default) so Redis keeps it a hash table.
# The window's oldest and newest seconds are `O` and `L`: a hash holding the earlier
# layout's `o`/`l` (its buckets in a key of their own) has neither, so its window starts
# afresh once, rather than counting buckets it cannot see.
# ARGV[10+n] '1': a counter about to be seeded while the mirror-filled marker is gone means
# Redis lost its data since the front door copied the seeds (the spend the database held):
# refuse with 'lost' and write nothing, so the front door re-reads them (LOST). Checked
# only when a counter is seeded: an EXISTS on the first request of a scope, none after.
# Floats go back as strings: Lua numbers become integers in a reply.
ADMIT: Final = """
local t = redis.call('TIME')
local sec = tonumber(t[1])
local now = sec * 1000 + math.floor(tonumber(t[2]) / 1000)
local tokens, cost, lease_ms = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local n = #KEYS - 4
local check_lost = ARGV[10 + n] == '1'
local rem_r, rem_t, lim_r, lim_t = -1, -1, -1, -1
local flags, writes = {}, {}
local first_spend = '0'
local rsec, tsec = false, false
local function expire_buckets(k, from, to)
  local names = {}
  for b = from, to do names[#names + 1] = 'r' .. b; names[#names + 1] = 't' .. b end
  if #names == 0 then return 0, 0 end
  local vals = redis.call('HMGET', k, unpack(names))
  local r, tk = 0, 0
  for j = 1, #vals, 2 do
    r = r + (tonumber(vals[j]) or 0)
    tk = tk + (tonumber(vals[j + 1]) or 0)
  end
  redis.call('HDEL', k, unpack(names))
  return r, tk
end
-- Seconds until the oldest second that counted anything leaves the window (refusals only).
local function retry_after(k, from, to, prefix)
  local names = {}
  for b = from, to do names[#names + 1] = prefix .. b end
  local vals = redis.call('HMGET', k, unpack(names))
  for j = 1, #vals do
    if (tonumber(vals[j]) or 0) > 0 then return from + j - 1 + 60 - to end
  end
  return 1
end
for i = 0, n - 1 do
  local k = KEYS[4 + i]
  local v = cmsgpack.unpack(ARGV[10 + i])
  local rpm, tpm, par, maxb = v[1], v[2], v[3], v[4]
  if not rsec then rsec, tsec = 'r' .. sec, 't' .. sec end
  local h = redis.call('HMGET', k, 'R', 'T', 'O', 'L', 'S', 'V', 'E', 'P', rsec, tsec)
  local w = {}
  local f = 0
  if rpm >= 0 or tpm >= 0 then
    local reqs, toks = tonumber(h[1]) or 0, tonumber(h[2]) or 0
    local oldest, last = tonumber(h[3]), tonumber(h[4])
    local in_r, in_t = tonumber(h[9]) or 0, tonumber(h[10]) or 0
    if oldest == nil or last == nil or last <= sec - 60 then
      if oldest ~= nil and last ~= nil then expire_buckets(k, oldest, last) end
      reqs, toks, oldest, in_r, in_t = 0, 0, sec, 0, 0
      w[#w + 1] = '~'; w[#w + 1] = string.rep('~', 65)
    elseif oldest <= sec - 60 then
      local r, tk = expire_buckets(k, oldest, sec - 60)
      reqs, toks, oldest = reqs - r, toks - tk, sec - 59
    end
    if rpm >= 0 and reqs >= rpm then
      return {'rpm', i, retry_after(k, oldest, sec, 'r'), rpm, tpm}
    end
    if tpm >= 0 and toks > 0 and toks + tokens > tpm then
      return {'tpm', i, retry_after(k, oldest, sec, 't'), rpm, tpm}
    end
    if rpm >= 0 and (rem_r < 0 or rpm - reqs - 1 < rem_r) then
      rem_r = rpm - reqs - 1; lim_r = rpm
    end
    if tpm >= 0 and (rem_t < 0 or tpm - toks - tokens < rem_t) then
      rem_t = math.max(0, tpm - toks - tokens); lim_t = tpm
    end
    w[#w + 1] = 'R'; w[#w + 1] = reqs + 1; w[#w + 1] = 'T'; w[#w + 1] = toks + tokens
    w[#w + 1] = rsec; w[#w + 1] = in_r + 1; w[#w + 1] = tsec; w[#w + 1] = in_t + tokens
    if oldest ~= tonumber(h[3]) then w[#w + 1] = 'O'; w[#w + 1] = oldest end
    if sec ~= tonumber(h[4]) then w[#w + 1] = 'L'; w[#w + 1] = sec end
    f = 1
  end
  if par >= 0 then
    local running = tonumber(h[8]) or 0
    if running >= par then return {'parallel', i, 1, par, -1} end
    w[#w + 1] = 'P'; w[#w + 1] = running + 1
    f = f + 2
  end
  local spent, reserved, ends = tonumber(h[5]), tonumber(h[6]) or 0, tonumber(h[7]) or -1
  local is_reset = spent == nil
  if is_reset then
    if check_lost and redis.call('EXISTS', KEYS[4 + n]) == 0 then return {'lost'} end
    spent, ends = v[5], v[6]
  end
  if ends >= 0 and now >= ends then spent, ends, is_reset = 0, v[7], true end
  if maxb >= 0 and spent + reserved >= maxb then
    return {'budget', i, tostring(ends), tostring(spent), tostring(maxb)}
  end
  if i == 0 then first_spend = h[5] or tostring(spent) end
  -- Only what changed is written: most admissions leave spent and the period alone.
  if is_reset then
    w[#w + 1] = 'S'; w[#w + 1] = spent
    w[#w + 1] = 'E'; w[#w + 1] = ends
    if i == 0 then first_spend = tostring(spent) end
  end
  if cost ~= 0 then
    w[#w + 1] = 'V'; w[#w + 1] = reserved + cost
  end
  writes[i + 1] = w
  flags[i + 1] = f
end
for i = 0, n - 1 do
  if #writes[i + 1] > 0 then redis.call('HSET', KEYS[4 + i], unpack(writes[i + 1])) end
end
redis.call('HSET', KEYS[2], 'c', ARGV[4], 'k', tokens, 's', sec, 'e', ARGV[6],
  'g', table.concat(flags), 'm', ARGV[9], 'n', ARGV[8])
redis.call('PEXPIRE', KEYS[2], lease_ms + 86400000)
redis.call('ZADD', KEYS[3], now + lease_ms, ARGV[2])
local id = redis.call('XADD', KEYS[1], '*', ARGV[7], ARGV[1])
return {'ok', id, rem_r, rem_t, lim_r, lim_t, first_spend}
"""

NONE: Final = -1
# A lease and a reservation outlive the request's deadline by this much before they expire.
LEASE_SLACK_MS: Final = 30_000


class Scope(msgspec.Struct, frozen=True):
    """One thing a request counts against: its name (workers.redis_streams.TenancyKeys),
    what it may spend, and the spend the database holds (the seed of a lost counter)."""

    name: str
    limits: Limits
    seed_spend: float = 0.0


class Ticket(msgspec.Struct, frozen=True, kw_only=True):
    """What admission reserves for one request."""

    scopes: tuple[Scope, ...]
    tokens: int
    cost_usd: float
    # The front door's half of the spend event (workers.tenancy.events.FrontEvent).
    event: bytes
    # A coroutine function making this request's ticket again from fresh copies of its key
    # and owners (after LOST); None: nothing to re-read.
    remake: Any = None

    @property
    def scope_names(self) -> tuple[str, ...]:
        return tuple(scope.name for scope in self.scopes)


encode_names = msgspec.msgpack.Encoder().encode
# The scripts' numeric arguments (ADMIT's per-scope arrays, the soft budgets).
encode_numbers = msgspec.msgpack.Encoder().encode
decode_names = msgspec.msgpack.Decoder(tuple[str, ...]).decode


class Admitted(msgspec.Struct, frozen=True):
    entry: bytes
    headers: dict[str, str]


def _soft_budgets(scopes: Sequence[Scope]) -> bytes:
    """Each scope's soft budget (-1: none) for the settlement; b"" when none has one, the
    common case, which the settlement then skips."""
    budgets = [scope.limits.soft_budget for scope in scopes]
    if budgets.count(None) == len(budgets):
        return b""
    return encode_numbers([NONE if budget is None else budget for budget in budgets])


def _period(limits: Limits, now_s: float) -> tuple[int, int]:
    """(the end of the current budget period, the end of a period starting now), unix ms."""
    if not limits.budget_duration:
        return NONE, NONE
    following = _period_end(limits.budget_duration, int(now_s))
    current = limits.reset_at_ms if limits.reset_at_ms is not None else following
    return current, following


# For charges that skip admission (workers/tenancy/charge.py): the same periods.
budget_period = _period


@functools.lru_cache(maxsize=256)
def _period_end(duration: str, now_s: int) -> int:
    # Per whole second: every request of a second shares the date arithmetic.
    start = datetime.fromtimestamp(now_s, UTC)
    return int(durations.after(start, duration).timestamp() * 1000)


# The script's verdict when Redis lost its data under a counter it was about to seed.
LOST: Final = "lost"


def script_call(
    keys: Keys,
    lane: str,
    envelope: bytes,
    request_id: str,
    ticket: Ticket,
    deadline_ms: int,
    *,
    check_lost: bool = False,
) -> tuple[list[str], list[Any]]:
    """The ADMIT script's keys and arguments."""
    tenancy = keys.tenancy
    script_keys = [keys.lane(lane), tenancy.reservation(request_id), tenancy.inflight]
    now_s = time.time()
    lease_ms = max(1000, deadline_ms - int(now_s * 1000)) + LEASE_SLACK_MS
    args: list[Any] = [
        envelope,
        request_id,
        ticket.tokens,
        repr(ticket.cost_usd),
        lease_ms,
        ticket.event,
        ENVELOPE_FIELD,
        encode_names(ticket.scope_names),
        _soft_budgets(ticket.scopes),
    ]
    for scope in ticket.scopes:
        script_keys.append(tenancy.scope(scope.name))
        limits = scope.limits
        current, following = _period(limits, now_s)
        args.append(
            encode_numbers(
                (
                    NONE if limits.rpm is None else limits.rpm,
                    NONE if limits.tpm is None else limits.tpm,
                    NONE if limits.parallel is None else limits.parallel,
                    NONE if limits.max_budget is None else limits.max_budget,
                    scope.seed_spend,
                    current,
                    following,
                )
            )
        )
    script_keys.append(tenancy.filled)
    args.append("1" if check_lost else "0")
    return script_keys, args


def queue(pipe: Pipeline, sha: str, call: tuple[list[str], list[Any]]) -> int:
    """The admission on a pipeline (for workers.batching); its reply goes to `outcome`."""
    script_keys, args = call
    pipe.evalsha(sha, len(script_keys), *script_keys, *args)
    return 1


def queue_text(pipe: Pipeline, call: tuple[list[str], list[Any]]) -> int:
    """As `queue`, sending the script itself: after a Redis restart forgot it (NOSCRIPT)."""
    script_keys, args = call
    pipe.eval(ADMIT, len(script_keys), *script_keys, *args)
    return 1


def is_lost(reply: Sequence[Any]) -> bool:
    """Whether the script found Redis had lost its data (LOST): nothing was admitted."""
    return len(reply) == 1 and _text(reply[0]) == LOST


def outcome(reply: Sequence[Any], ticket: Ticket) -> Admitted:
    """The entry id and the headers of an admitted request; raises what refused it."""
    verdict = _text(reply[0])
    if verdict == "ok":
        headers = _headers(reply)
        if not ticket.scopes or not ticket.scopes[0].name.startswith("key:"):
            del headers["x-litellm-key-spend"]  # a database key's own spend, or none
        return Admitted(bytes(reply[1]), headers)
    scope = ticket.scopes[int(reply[1])]
    if verdict == "budget":
        raise _over_budget(scope, float(reply[3]), float(reply[4]), float(reply[2]))
    retry_s = max(1, int(reply[2]))
    what = {"rpm": "requests per minute", "tpm": "tokens per minute"}.get(verdict)
    if what is None:
        message = f"max_parallel_requests of {_describe(scope.name)} reached ({reply[3]})"
    else:
        limit = reply[3] if verdict == "rpm" else reply[4]
        message = f"{what} limit of {_describe(scope.name)} reached ({limit})"
    error = RateLimited(
        f"Rate limit exceeded: {message}; retry after {retry_s}s",
        code="rate_limit_exceeded",
        retry_after_s=float(retry_s),
    )
    error.headers = _limit_headers(scope.limits, verdict)
    raise error


def _headers(reply: Sequence[Any]) -> dict[str, str]:
    rem_r, rem_t, lim_r, lim_t = (int(value) for value in reply[2:6])
    headers = {"x-litellm-key-spend": _text(reply[6])}
    if lim_r >= 0:
        headers["x-ratelimit-limit-requests"] = str(lim_r)
        headers["x-ratelimit-remaining-requests"] = str(max(0, rem_r))
    if lim_t >= 0:
        headers["x-ratelimit-limit-tokens"] = str(lim_t)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, rem_t))
    return headers


def _limit_headers(limits: Limits, verdict: str) -> dict[str, str]:
    headers: dict[str, str] = {}
    if limits.rpm is not None:
        headers["x-ratelimit-limit-requests"] = str(limits.rpm)
        headers["x-ratelimit-remaining-requests"] = "0" if verdict == "rpm" else ""
    if limits.tpm is not None:
        headers["x-ratelimit-limit-tokens"] = str(limits.tpm)
        headers["x-ratelimit-remaining-tokens"] = "0" if verdict == "tpm" else ""
    return {k: v for k, v in headers.items() if v}


def _over_budget(scope: Scope, spent: float, budget: float, ends_ms: float) -> BudgetExceeded:
    if ends_ms >= 0:
        reset = datetime.fromtimestamp(ends_ms / 1000, UTC).isoformat(timespec="seconds")
        when = f"; it resets at {reset}"
    else:
        when = "; it does not reset (no budget_duration)"
    return BudgetExceeded(
        f"Budget has been exceeded! {_describe(scope.name)}: current cost {spent:.6g}, "
        f"max budget {budget:.6g}{when}",
        param=scope.name.partition(":")[0],
    )


SCOPE_WORDS = {
    "key": "key",
    "team": "team",
    "user": "user",
    "member": "team member",
    "org": "organization",
    "customer": "end user",
    "model": "model budget of key",
    "global": "the proxy",
}
# An owner's budget on one model group: `model-<scope>:<group>` (broker/tenancy.py).
SCOPE_WORDS.update(
    {f"model-{kind}": f"model budget of {SCOPE_WORDS[kind]}" for kind in list(SCOPE_WORDS)[1:6]}
)


def _describe(scope: str) -> str:
    kind, _, rest = scope.partition(":")
    if kind == "global":
        return "the proxy"
    if kind == "key":
        rest = f"...{rest[-8:]}" if len(rest) > 8 else rest  # its hash's end, never the key
    return f"{SCOPE_WORDS.get(kind, kind)} `{rest}`"


def _text(value: bytes | str | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
