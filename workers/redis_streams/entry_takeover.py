"""Taking over a silent worker's entries at once (issue #15): who holds what, who went
silent, the take-over, renewals, hand-backs and a consumer's goodbye."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis

from workers.redis_streams.key_names import ENVELOPE_FIELD, GROUP, Keys, as_text, run_script


async def holders(r: Redis, keys: Keys, lanes: Sequence[str]) -> dict[str, set[str]]:
    """Per lane, the consumers holding entries (XPENDING's summary). One round trip."""
    pipe = r.pipeline(transaction=False)
    for lane in lanes:
        pipe.xpending(keys.lane(lane), GROUP)
    summaries: Any = await pipe.execute()
    found: dict[str, set[str]] = {}
    for lane, summary in zip(lanes, summaries, strict=True):
        names = {as_text(c["name"]) for c in summary.get("consumers") or () if int(c["pending"])}
        if names:
            found[lane] = names
    return found


# KEYS[1] heartbeats; ARGV[1] grace (s), ARGV[2..] worker ids. Returns Redis's time and, for
# each worker silent past the grace, its id and last heartbeat ("" when it has none: it
# never beat, or said goodbye, or was pruned).
SILENT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local horizon = now - tonumber(ARGV[1])
local out = {string.format('%.6f', now)}
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if not score or tonumber(score) < horizon then
    out[#out + 1] = ARGV[i]
    out[#out + 1] = score or ''
  end
end
return out
"""


async def silent_workers(
    r: Redis, keys: Keys, worker_ids: Sequence[str], grace_s: float
) -> tuple[float, dict[str, float | None]]:
    """Redis's time now, and which of `worker_ids` have not beaten within `grace_s`, with
    their last heartbeat (None without one)."""
    reply: Any = await run_script(r, SILENT_SCRIPT, keys.heartbeats, grace_s, *worker_ids)
    now = float(reply[0])
    rows = [as_text(item) for item in reply[1:]]
    return now, {
        rows[i]: float(rows[i + 1]) if rows[i + 1] else None for i in range(0, len(rows), 2)
    }


# KEYS[1] lane; ARGV: group, silent consumer, this worker, count. Claims (XCLAIM, min-idle 0)
# up to `count` entries the silent consumer still holds, atomically: an entry another worker
# took meanwhile is not taken from it. A consumer left holding nothing is deleted from the
# group (XINFO CONSUMERS would otherwise list every worker that ever ran). Returns the
# claimed entries, the ids it held (those not claimed were deleted meanwhile), their
# delivery counts before this claim, and how many it still holds.
TAKE_OVER_SCRIPT = """
local rows = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[4]), ARGV[2])
local ids, deliveries = {}, {}
for i, row in ipairs(rows) do
  ids[i] = row[1]
  deliveries[i] = row[4]
end
local claimed = {}
if #ids > 0 then
  claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[3], 0, unpack(ids))
end
local left = #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if left == 0 then
  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
end
return {claimed, ids, deliveries, left}
"""


class TakenOver(msgspec.Struct, frozen=True):
    """What one take-over call got: entries with their envelopes and delivery counts (this
    delivery included), ids deleted meanwhile, and whether the silent consumer holds more."""

    entries: list[tuple[bytes, bytes, int]]
    deleted: list[bytes]
    has_more: bool


async def take_over(
    r: Redis, keys: Keys, lane: str, silent: str, consumer: str, count: int
) -> TakenOver:
    reply: Any = await run_script(
        r, TAKE_OVER_SCRIPT, keys.lane(lane), GROUP, silent, consumer, count
    )
    claimed_rows, ids, deliveries, left = reply
    held = {bytes(entry): int(times) for entry, times in zip(ids, deliveries, strict=True)}
    entries = []
    for row in claimed_rows:
        entry, flat = bytes(row[0]), row[1] or []
        fields = {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)}
        entries.append((entry, bytes(fields.get(ENVELOPE_FIELD, b"")), held.pop(entry) + 1))
    # Redis 6.2 returns a deleted entry's id with no fields (read as an empty envelope); 7.0
    # drops it from the pending list and returns nothing.
    deleted = [entry for entry, raw, _ in entries if not raw] + list(held)
    entries = [row for row in entries if row[1]]
    return TakenOver(entries, deleted, int(left) > 0)


# KEYS[1] lane; ARGV: group, this worker, entry ids. Renews (XCLAIM min-idle 0 JUSTID: idle
# time reset, delivery count kept) only the entries this worker still holds; returns those
# another consumer holds: taken over while this worker was presumed dead (paused, cut off).
# An entry nobody holds is neither: acknowledged (its reply ended), or gone with Redis's
# data (its front door queues it again, and this worker adopts the copy).
RENEW_SCRIPT = """
local mine, lost = {}, {}
for i = 3, #ARGV do
  local row = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)[1]
  if row and row[2] == ARGV[2] then
    mine[#mine + 1] = ARGV[i]
  elseif row then
    lost[#lost + 1] = ARGV[i]
  end
end
if #mine > 0 then
  mine[#mine + 1] = 'JUSTID'  -- unpack expands only as the last argument
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, unpack(mine))
end
return lost
"""


async def renew_held(
    r: Redis, keys: Keys, lane: str, consumer: str, entries: Sequence[bytes]
) -> list[bytes]:
    """Reset the idle time of the entries this consumer still holds, so nobody reclaims
    them; returns those another consumer holds now."""
    if not entries:
        return []
    lost: Any = await run_script(r, RENEW_SCRIPT, keys.lane(lane), GROUP, consumer, *entries)
    return [bytes(entry) for entry in lost]


# KEYS[1] lane; ARGV: group, entry, this worker, the worker to give it to.
HAND_BACK_SCRIPT = """
local row = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)[1]
if row and row[2] == ARGV[3] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[4], 0, ARGV[2], 'JUSTID')
  return 1
end
return 0
"""


async def hand_back(r: Redis, keys: Keys, lane: str, entry: bytes, consumer: str, to: str) -> bool:
    """Give an entry this consumer took over back to the worker it was taken from: that
    worker was alive after all, and its record reached the reply first."""
    done: Any = await run_script(r, HAND_BACK_SCRIPT, keys.lane(lane), GROUP, entry, consumer, to)
    return bool(done)


# KEYS[1] lane; ARGV: group, consumer. Deletes the consumer if it holds nothing (-1: it does).
DROP_CONSUMER_SCRIPT = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return -1 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
"""


async def drop_consumer(r: Redis, keys: Keys, lanes: Sequence[str], consumer: str) -> bool:
    """Delete a stopping worker's consumer from each lane's group, unless it still holds
    entries there (another worker takes those over). True if it held none anywhere."""
    pipe = r.pipeline(transaction=False)
    for lane in lanes:
        pipe.eval(DROP_CONSUMER_SCRIPT, 1, keys.lane(lane), GROUP, consumer)
    dropped: Any = await pipe.execute()
    return all(result != -1 for result in dropped)
