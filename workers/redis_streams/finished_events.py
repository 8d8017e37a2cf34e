"""The finished-request events on the ledger stream, shared by two consumer groups (issue #19):
`ledger` writes spend rows (workers/tenancy/ledger.py), `callbacks` feeds the callbacks
(workers/hooks/consumer.py). Neither group may delete what the other still has to read, so
an entry leaves the stream only once every group has acknowledged it: each ack trims the
stream to the slowest group's floor (`ack_and_trim`), never XDEL.

The callbacks' backlog (entries that group has not acknowledged) is bounded by a cap: past
it the oldest are skipped for the callbacks, counted, and left for the ledger
(`drop_past_cap`). The ledger's own backlog is never capped: spend is not dropped."""

from __future__ import annotations

from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from workers.redis_streams.key_names import Keys, TenancyKeys

Entry = tuple[bytes, dict[bytes, bytes]]
# A callbacks group none of whose consumers was seen for this long no longer holds the
# stream (a live consumer is seen every few seconds, retrying included).
ABANDONED_MS = 3_600_000

# Lua helpers: a stream id as {ms, seq} numbers (ms < 2^53 is exact in a double), and the
# floor of one group: its oldest pending entry, or the entry after the last it was given.
_FLOOR_HELPERS: Final = """
local function split(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return {tonumber(ms), tonumber(seq)}
end
local function less(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end
local function group_info(key)
  local out = {}
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', key)) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    out[#out + 1] = info
  end
  return out
end
local function floor_of(key, info)
  if tonumber(info['pending']) > 0 then
    return split(redis.call('XPENDING', key, info['name'])[2])
  end
  local last = split(info['last-delivered-id'])
  return {last[1], last[2] + 1}
end
"""

# KEYS[1] the stream; ARGV[1] the group, ARGV[2] the group that may be abandoned, ARGV[3]
# after how long (ms), ARGV[4..] the ids ARGV[1] is done with. Acks, then trims the stream
# below the slowest group's floor (exactly). The callbacks group holds the stream only while
# some consumer of it was seen within ARGV[3]: callbacks turned off for good must not keep
# every spend event in Redis forever. The ledger's group always holds it (spend is kept).
ACK_AND_TRIM: Final = (
    _FLOOR_HELPERS
    + """
local ids = {}
for i = 4, #ARGV do ids[#ids + 1] = ARGV[i] end
redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
local function abandoned(name)
  if name ~= ARGV[2] then return false end
  local consumers = redis.call('XINFO', 'CONSUMERS', KEYS[1], name)
  if #consumers == 0 then return false end  -- just made: its first reader is on its way
  for _, c in ipairs(consumers) do
    for i = 1, #c, 2 do
      if c[i] == 'idle' and tonumber(c[i + 1]) < tonumber(ARGV[3]) then return false end
    end
  end
  return true
end
local floor = nil
for _, info in ipairs(group_info(KEYS[1])) do
  if not abandoned(info['name']) then
    local f = floor_of(KEYS[1], info)
    if floor == nil or less(f, floor) then floor = f end
  end
end
if floor ~= nil then
  redis.call('XTRIM', KEYS[1], 'MINID', string.format('%.0f-%d', floor[1], floor[2]))
end
return redis.call('XLEN', KEYS[1])
"""
)

# KEYS[1] the stream; ARGV[1] the group. How far the group's reading lags: 0 with nothing
# unread, else the ms since the oldest entry it has not read was written (by Redis's
# clock); -1 without the group. Read from the stream, not from XINFO's `lag`: Redis 6.2
# (the embedded one's) has none, and the time since the last entry read was written would
# count a quiet spell as lag.
READ_BEHIND_MS: Final = (
    _FLOOR_HELPERS
    + """
for _, info in ipairs(group_info(KEYS[1])) do
  if info['name'] == ARGV[1] then
    local after = '(' .. info['last-delivered-id']
    local unread = redis.call('XRANGE', KEYS[1], after, '+', 'COUNT', 1)
    if #unread == 0 then return 0 end
    local now = redis.call('TIME')
    local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
    return math.max(now_ms - split(unread[1][1])[1], 1)
  end
end
return -1
"""
)

# KEYS[1] the stream; ARGV: group, consumer. Deletes the consumer unless it holds entries
# (-1) or is the group's last (-2): ACK_AND_TRIM tells an abandoned callbacks group by its
# consumers' idle time, and a group left with none would look just made, holding the stream
# for ever.
LEAVE_GROUP: Final = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return -1 end
if #redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1]) <= 1 then return -2 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
"""


# KEYS[1] the stream; ARGV[1] the group, ARGV[2] the cap. The group's backlog (pending +
# not yet read); past the cap, the oldest unread entries are skipped (SETID past them) and,
# if that is not enough, the caller drops its pending batch. Returns {backlog, skipped}.
DROP_PAST_CAP: Final = (
    _FLOOR_HELPERS
    + """
local cap = tonumber(ARGV[2])
for _, info in ipairs(group_info(KEYS[1])) do
  if info['name'] == ARGV[1] then
    local pending = tonumber(info['pending'])
    local lag = tonumber(info['lag']) or redis.call('XLEN', KEYS[1])
    local over = pending + lag - cap
    -- At most 10000 a call, so one call never holds Redis long; the next call skips more.
    local skip = math.min(math.max(over, 0), lag, 10000)
    if skip > 0 then
      local last = info['last-delivered-id']
      local skipped = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', skip)
      if #skipped > 0 then
        -- With ENTRIESREAD the group's lag stays exact (without it Redis forgets it).
        local read = tonumber(info['entries-read'])
        if read then
          redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], skipped[#skipped][1],
            'ENTRIESREAD', read + #skipped)
        else
          redis.call('XGROUP', 'SETID', KEYS[1], ARGV[1], skipped[#skipped][1])
        end
      end
      return {pending + lag - #skipped, #skipped}
    end
    return {pending + lag, 0}
  end
end
return {0, 0}
"""
)


def append_call(pipe: Pipeline, keys: Keys, request_id: str, call: bytes) -> int:
    """A finished request's callbacks event when no spend event carries it (a request
    admitted without tenancy): one XADD on the writer's pipeline, no round trip of its own."""
    tenancy = keys.tenancy
    pipe.xadd(tenancy.ledger, {TenancyKeys.REQUEST_FIELD: request_id, TenancyKeys.CALL_FIELD: call})
    return 1


async def append_call_now(redis: Redis, keys: Keys, request_id: str, call: bytes) -> None:
    """The same, on its own (a front door's answer)."""
    await redis.xadd(
        keys.tenancy.ledger,
        {TenancyKeys.REQUEST_FIELD: request_id, TenancyKeys.CALL_FIELD: call},
    )


async def append_front_spans(redis: Redis, keys: Keys, spans: bytes) -> None:
    """A front door's batch of spans it saw end (their records, packed), one entry."""
    await redis.xadd(keys.tenancy.ledger, {TenancyKeys.FRONT_SPANS_FIELD: spans})


async def ensure_group(redis: Redis, stream: str, group: str) -> None:
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def ack_and_trim(redis: Redis, stream: str, group: str, ids: list[bytes]) -> int:
    """Acknowledge `ids` for `group` and trim what every group is done with; the length
    left (the entries some group still has to write or deliver)."""
    if not ids:
        return int(await redis.xlen(stream))
    left: Any = await redis.eval(  # type: ignore[misc]  # redis-py's eval is typed as sync or async
        ACK_AND_TRIM, 1, stream, group, TenancyKeys.CALLBACKS_GROUP, ABANDONED_MS, *ids
    )
    return int(left)


async def read_behind_ms(redis: Redis, stream: str, group: str) -> int:
    """How far the group's reading lags the stream: 0 when every entry has been read, else
    how long ago the oldest entry it has not read was written (-1: no such group)."""
    reply: Any = await redis.eval(READ_BEHIND_MS, 1, stream, group)  # type: ignore[misc]  # as above
    return int(reply)


async def drop_past_cap(redis: Redis, stream: str, group: str, cap: int) -> tuple[int, int]:
    """(the group's backlog, entries skipped now) with the backlog held to `cap`."""
    reply: Any = await redis.eval(DROP_PAST_CAP, 1, stream, group, cap)  # type: ignore[misc]  # as above
    return int(reply[0]), int(reply[1])


async def read_group(
    redis: Redis, stream: str, group: str, consumer: str, count: int, block_ms: int | None
) -> list[Entry]:
    reply: Any = await redis.xreadgroup(group, consumer, {stream: ">"}, count=count, block=block_ms)
    if not reply:
        return []
    return [(bytes(i), fields) for i, fields in reply[0][1] if fields]


async def claim_idle(
    redis: Redis, stream: str, group: str, consumer: str, idle_ms: int, count: int
) -> list[Entry]:
    """Entries another consumer of `group` left pending past `idle_ms` (it died)."""
    reply: Any = await redis.xautoclaim(
        stream, group, consumer, min_idle_time=idle_ms, start_id="0-0", count=count
    )
    return [(bytes(i), fields) for i, fields in reply[1] if fields]


async def keep_claimed(
    redis: Redis, stream: str, group: str, consumer: str, ids: list[bytes]
) -> None:
    """Reset the idle time of entries this consumer is still delivering (retrying a
    collector that is down), so no other consumer claims them and delivers them twice."""
    if ids:
        message_ids: list[Any] = list(ids)
        await redis.xclaim(stream, group, consumer, 0, message_ids, justid=True)


async def leave_group(redis: Redis, stream: str, group: str, consumer: str) -> bool:
    """Delete a stopped consumer from `group` unless it still holds entries (the next
    reader claims those) or is the last one (see LEAVE_GROUP): each process start is a
    consumer of its own, and a group would otherwise keep every one that ever read. True
    if it was deleted, False if it stays."""
    left: Any = await redis.eval(LEAVE_GROUP, 1, stream, group, consumer)  # type: ignore[misc]  # as above
    return int(left) >= 0


async def backlog(redis: Redis, stream: str, group: str) -> int:
    """Entries `group` has not acknowledged (pending and unread)."""
    groups: Any = await redis.xinfo_groups(stream)
    for info in groups:
        name = info["name"]
        if (name.decode() if isinstance(name, bytes) else name) == group:
            lag = info.get("lag")
            if lag is None:
                lag = await redis.xlen(stream)
            return int(info["pending"]) + int(lag)
    return 0
