"""Batches (issue #20): which are active, the lease of the runner that drives one, its
cancel flag, and which of its lines are queued."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Sequence
from typing import Any, cast

import msgspec
from redis.asyncio import Redis

from workers.envelopes import decode_envelope
from workers.redis_streams.key_names import ENVELOPE_FIELD, RECORD_FIELD, Keys, as_text, run_script
from workers.redis_streams.reply_records import queue_last_record, record_of

_RENEW_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE_LEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


async def activate_batch(r: Redis, keys: Keys, batch_id: str) -> None:
    """A batch that needs a runner until it ends."""
    await cast("Awaitable[int]", r.sadd(keys.batch(batch_id).active, batch_id))


async def active_batches(r: Redis, keys: Keys) -> list[str]:
    members: Any = await cast("Awaitable[Any]", r.smembers(keys.batch("").active))
    return sorted(as_text(member) for member in members)


async def end_batch(r: Redis, keys: Keys, batch_id: str, holder: str) -> None:
    """The batch is over: no runner needed, its control keys gone, the lease released."""
    batch = keys.batch(batch_id)
    pipe = r.pipeline(transaction=False)
    pipe.srem(batch.active, batch_id)
    pipe.delete(batch.sent, batch.cancel)
    pipe.eval(_RELEASE_LEASE, 1, batch.lease, holder)
    await pipe.execute()


async def take_lease(r: Redis, keys: Keys, batch_id: str, holder: str, ttl_ms: int) -> bool:
    return bool(await r.set(keys.batch(batch_id).lease, holder, nx=True, px=ttl_ms))


async def renew_lease(r: Redis, keys: Keys, batch_id: str, holder: str, ttl_ms: int) -> bool:
    return bool(await run_script(r, _RENEW_LEASE, keys.batch(batch_id).lease, holder, ttl_ms))


async def release_lease(r: Redis, keys: Keys, batch_id: str, holder: str) -> None:
    await run_script(r, _RELEASE_LEASE, keys.batch(batch_id).lease, holder)


async def request_batch_cancel(r: Redis, keys: Keys, batch_id: str, at_s: int) -> int:
    """Ask the batch's runner to stop; when it was first asked (unix seconds)."""
    key = keys.batch(batch_id).cancel
    pipe = r.pipeline(transaction=False)
    pipe.set(key, at_s, nx=True)
    pipe.get(key)
    _, first = await pipe.execute()
    return int(first)


async def batch_cancel_requested(r: Redis, keys: Keys, batch_id: str) -> int | None:
    value: Any = await r.get(keys.batch(batch_id).cancel)
    return int(value) if value is not None else None


async def note_batch_line(r: Redis, keys: Keys, batch_id: str, index: int, request_id: str) -> None:
    """Note a batch line as sent, before it is queued: a runner that starts again waits on
    what is noted rather than queue it twice (`batch_lane_requests` tells it apart from a
    line whose queuing never happened)."""
    await cast("Awaitable[int]", r.hset(keys.batch(batch_id).sent, str(index), request_id))


async def batch_lane_requests(r: Redis, keys: Keys, lane: str, limit: int) -> set[str]:
    """The request ids queued or running in the batch lane (its runners keep it to a few
    windows' worth of entries, so reading it whole is cheap)."""
    rows: Any = await r.xrange(keys.lane(lane), min="-", max="+", count=limit)
    found: set[str] = set()
    for _entry, fields in rows:
        raw = fields.get(ENVELOPE_FIELD) if fields else None
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            if raw:
                found.add(decode_envelope(raw).request_id)
    return found


async def replies_exist(r: Redis, keys: Keys, request_ids: Sequence[str]) -> list[bool]:
    pipe = r.pipeline(transaction=False)
    for request_id in request_ids:
        pipe.exists(keys.reply(request_id))
    return [bool(n) for n in await pipe.execute()]


async def sent_lines(r: Redis, keys: Keys, batch_id: str) -> dict[int, str]:
    """Lines noted as sent and not yet written out: index -> request id."""
    raw: Any = await cast("Awaitable[Any]", r.hgetall(keys.batch(batch_id).sent))
    return {int(index): as_text(value) for index, value in raw.items()}


async def forget_lines(r: Redis, keys: Keys, batch_id: str, indexes: Sequence[int]) -> None:
    if indexes:
        sent = keys.batch(batch_id).sent
        await cast("Awaitable[int]", r.hdel(sent, *(str(i) for i in indexes)))


async def all_records(r: Redis, keys: Keys, request_ids: Sequence[str]) -> list[list[bytes]]:
    """Every record of each reply, in one round trip (ended replies, read once)."""
    pipe = r.pipeline(transaction=False)
    for request_id in request_ids:
        pipe.xrange(keys.reply(request_id), min="-", max="+")
    rows: list[Any] = await pipe.execute()
    return [[fields[RECORD_FIELD] for _entry, fields in reply] for reply in rows]


async def last_records(r: Redis, keys: Keys, request_ids: Sequence[str]) -> list[bytes | None]:
    """The last record of each reply (None: no reply stream yet), in one round trip."""
    pipe = r.pipeline(transaction=False)
    for request_id in request_ids:
        queue_last_record(pipe, keys, request_id)
    return [record_of(rows) for rows in await pipe.execute()]


# --------------------------------------------------------------------------- workers


_TAKE_SUBMIT = """
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if held then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""


async def take_native_submit(
    r: Redis, keys: Keys, deployment: str, batch_id: str, ttl_ms: int
) -> bool:
    """Hold the right to submit to `deployment`'s batch API (again, if this batch held it
    when its runner died); False while another batch holds it."""
    key = keys.batch(batch_id).native_submit(deployment)
    return bool(await run_script(r, _TAKE_SUBMIT, key, batch_id, ttl_ms))


async def release_native_submit(r: Redis, keys: Keys, deployment: str, batch_id: str) -> None:
    await run_script(r, _RELEASE_LEASE, keys.batch(batch_id).native_submit(deployment), batch_id)


async def claim_native_batch(
    r: Redis, keys: Keys, provider_batch_id: str, batch_id: str, ttl_s: int
) -> None:
    """Note that a provider batch is this batch's: no other batch adopts it."""
    await r.set(keys.batch(batch_id).native_claim(provider_batch_id), batch_id, ex=ttl_s)


async def native_claims(r: Redis, keys: Keys, provider_batch_ids: Sequence[str]) -> dict[str, str]:
    """Provider batch -> the batch that claimed it, for those claimed."""
    if not provider_batch_ids:
        return {}
    names = [keys.batch("").native_claim(found) for found in provider_batch_ids]
    values: list[Any] = await r.mget(names)
    return {
        found: as_text(value)
        for found, value in zip(provider_batch_ids, values, strict=True)
        if value is not None
    }
