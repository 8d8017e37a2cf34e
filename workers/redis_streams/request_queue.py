"""The request streams (one per lane): enqueue, read through the consumer group, ack,
reclaim and dead-letter; queue depths."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import (
    ClusterDownError,
    MasterDownError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)

from workers.envelopes import decode_envelope
from workers.redis_streams.key_names import DEAD_LETTER_MAXLEN, ENVELOPE_FIELD, GROUP, Keys


async def join_epoch(r: Redis, keys: Keys) -> bytes:
    """The id of the data Redis holds now: made by the first process that asks, read by the
    rest. A process that later reads a different one knows Redis lost its data (a restart
    without persistence) and with it every queued request."""
    pipe = r.pipeline(transaction=False)
    pipe.set(keys.epoch, os.urandom(8).hex(), nx=True)
    pipe.get(keys.epoch)
    made, epoch = await pipe.execute(raise_on_error=False)
    if isinstance(epoch, Exception):
        raise epoch
    # A full Redis (OOM at maxmemory) refuses the SET even when the key exists, and then the
    # SET would have done nothing: the epoch read is the answer.
    if isinstance(made, Exception) and epoch is None:
        raise made
    # None: the key went between the two commands (flushed, evicted); no epoch is ours.
    return bytes(epoch) if epoch is not None else b""


async def still_queued(
    r: Redis, keys: Keys, places: Sequence[tuple[str, str, bytes]]
) -> list[bool]:
    """For each (request id, lane, entry): whether Redis still has the request, queued in
    its lane or with records in its reply stream. One pipeline (in a cluster, split by slot)."""
    pipe = r.pipeline(transaction=False)
    for request_id, lane, entry in places:
        pipe.xrange(keys.lane(lane), entry, entry, count=1)
        pipe.exists(keys.reply(request_id))
    replies: list[Any] = await pipe.execute()
    found = []
    for i, (request_id, _lane, _entry) in enumerate(places):
        rows, has_reply = replies[2 * i], replies[2 * i + 1]
        in_lane = bool(rows) and _envelope_names(rows[0][1], request_id)
        found.append(in_lane or bool(has_reply))
    return found


def _envelope_names(fields: dict[bytes, bytes], request_id: str) -> bool:
    # Entry ids are times: a new Redis may give the same id to another request.
    try:
        return decode_envelope(fields.get(ENVELOPE_FIELD, b"")).request_id == request_id
    except msgspec.DecodeError:
        return False


def is_missing_group(exc: ResponseError) -> bool:
    """Redis no longer has a lane's consumer group: it restarted without persistence, or
    someone deleted the stream (a blocked XREADGROUP then ends with UNBLOCKED).
    `ensure_groups` makes it again."""
    return str(exc).startswith(("NOGROUP", "UNBLOCKED"))


def is_passing(exc: ResponseError) -> bool:
    """A refusal that passes by itself: READONLY while a failover promotes a replica,
    TRYAGAIN, CLUSTERDOWN or MASTERDOWN while a cluster or a replica settles."""
    return isinstance(exc, ReadOnlyError | TryAgainError | ClusterDownError | MasterDownError)


async def ensure_groups(r: Redis, keys: Keys, lanes: Iterable[str]) -> None:
    for lane in lanes:
        try:
            await r.xgroup_create(keys.lane(lane), GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


async def enqueue(r: Redis, keys: Keys, lane: str, envelope: bytes) -> bytes:
    entry: Any = await r.xadd(keys.lane(lane), {ENVELOPE_FIELD: envelope})
    return bytes(entry)


def queue_request(pipe: Pipeline, keys: Keys, lane: str, envelope: bytes) -> int:
    """`enqueue` on a pipeline (for workers.batching); its reply is the entry id."""
    pipe.xadd(keys.lane(lane), {ENVELOPE_FIELD: envelope})
    return 1


RequestEntry = tuple[str, bytes, bytes]  # (lane, entry id, envelope)


async def read_requests(
    r: Redis, keys: Keys, consumer: str, lanes: Sequence[str], count: int, block_ms: int | None
) -> list[RequestEntry]:
    """New entries for this consumer: at most `count` per lane, blocking up to `block_ms`."""
    streams: Any = {keys.lane(lane): ">" for lane in lanes}
    reply: Any = await r.xreadgroup(GROUP, consumer, streams, count=count, block=block_ms)
    return _entries(reply, keys, lanes)


def _entries(reply: Any, keys: Keys, lanes: Sequence[str]) -> list[RequestEntry]:
    by_key = {keys.lane(lane).encode(): lane for lane in lanes}
    found: list[RequestEntry] = []
    for stream_key, messages in reply or ():
        lane = by_key[stream_key]
        for entry, fields in messages:
            found.append((lane, entry, fields.get(ENVELOPE_FIELD, b"") if fields else b""))
    return found


def ack(pipe: Pipeline, keys: Keys, lane: str, entry: bytes) -> int:
    """Acknowledge and delete a finished request entry (queued after its final record).

    Returns the number of commands queued (for workers.batching)."""
    stream = keys.lane(lane)
    pipe.xack(stream, GROUP, entry)
    pipe.xdel(stream, entry)
    return 2


async def reclaim(
    r: Redis, keys: Keys, lane: str, consumer: str, min_idle_ms: int, count: int
) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    """Take over entries idle past `min_idle_ms` (their worker died).

    Returns (entries with their envelopes, ids of entries that were deleted meanwhile)."""
    stream = keys.lane(lane)
    claimed: list[tuple[bytes, bytes]] = []
    deleted: list[bytes] = []
    start: Any = "0-0"
    while len(claimed) < count:
        reply: Any = await r.xautoclaim(
            stream, GROUP, consumer, min_idle_ms, start_id=start, count=count - len(claimed)
        )
        start, messages = reply[0], reply[1]
        for entry, fields in messages:
            # Redis 6.2 returns an entry deleted meanwhile as (id, None); 7.0 lists it apart.
            if fields is None:
                deleted.append(entry)
            else:
                claimed.append((entry, fields.get(ENVELOPE_FIELD, b"")))
        if len(reply) > 2:
            deleted.extend(reply[2])
        if start in (b"0-0", "0-0"):
            break
    return claimed, deleted


async def ack_deleted(r: Redis, keys: Keys, lane: str, entries: Sequence[bytes]) -> None:
    """Acknowledge pending entries that were deleted meanwhile (a front door cancelled them):
    there is nothing left to run, and they would be reclaimed again and again."""
    if entries:
        await r.xack(keys.lane(lane), GROUP, *entries)


async def delivery_counts(r: Redis, keys: Keys, lane: str, entries: Sequence[bytes]) -> list[int]:
    pipe = r.pipeline(transaction=False)
    for entry in entries:
        pipe.xpending_range(keys.lane(lane), GROUP, min=entry, max=entry, count=1)
    counts = []
    results: Any = await pipe.execute()
    for rows in results:
        counts.append(int(rows[0]["times_delivered"]) if rows else 0)
    return counts


def dead_letter(
    pipe: Pipeline, keys: Keys, lane: str, entry: bytes, envelope: bytes, reason: str
) -> None:
    pipe.xadd(
        keys.dead_letter,
        {b"lane": lane, b"entry": entry, b"reason": reason, ENVELOPE_FIELD: envelope},
        maxlen=DEAD_LETTER_MAXLEN,
        approximate=True,
    )
    ack(pipe, keys, lane, entry)


async def queue_depths(r: Redis, keys: Keys, lanes: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Per lane: (entries waiting for a worker, entries a worker holds). Works on Redis 6.2,
    whose XINFO has no `lag`: processed entries are deleted, so length - pending = waiting."""
    pipe = r.pipeline(transaction=False)
    for lane in lanes:
        pipe.xlen(keys.lane(lane))
        pipe.xpending(keys.lane(lane), GROUP)
    results: Any = await pipe.execute(raise_on_error=False)
    depths = {}
    for i, lane in enumerate(lanes):
        length, pending = results[2 * i], results[2 * i + 1]
        held = int(pending["pending"]) if isinstance(pending, dict) else 0
        total = int(length) if isinstance(length, int) else 0
        depths[lane] = (max(0, total - held), held)
    return depths


LANE_CLOCK_SCRIPT = "return redis.call('TIME')"


async def queue_waits(r: Redis, keys: Keys, lanes: Sequence[str]) -> dict[str, float]:
    """Per lane: how long (seconds) the oldest entry no worker has taken yet has waited; 0
    when none waits. That entry is the first after the group's last delivered id, and its
    id is Redis's clock when it was queued (XADD *), read against Redis's clock (TIME): two
    round trips, whatever the number of entries waiting."""
    if not lanes:
        return {}
    pipe = r.pipeline(transaction=False)
    # TIME through a script on the lanes' key: a cluster pipeline refuses keyless commands,
    # and this reads the clock of the shard that stamped the entries.
    pipe.eval(LANE_CLOCK_SCRIPT, 1, keys.lane(lanes[0]))
    for lane in lanes:
        pipe.xinfo_groups(keys.lane(lane))
    results: Any = await pipe.execute(raise_on_error=False)
    seconds, micros = (int(part) for part in results[0])
    now_ms = seconds * 1000 + micros // 1000
    last_ids: dict[str, bytes] = {}
    for lane, groups in zip(lanes, results[1:], strict=True):
        for group in groups if isinstance(groups, list) else ():
            if group.get("name") in (GROUP, GROUP.encode()):
                last_ids[lane] = group["last-delivered-id"]
    pipe = r.pipeline(transaction=False)
    for lane, last_id in last_ids.items():
        last = last_id.decode() if isinstance(last_id, bytes) else str(last_id)
        pipe.xrange(keys.lane(lane), min="(" + last, max="+", count=1)
    firsts: Any = await pipe.execute(raise_on_error=False) if last_ids else []
    waits = dict.fromkeys(lanes, 0.0)
    for lane, first in zip(last_ids, firsts, strict=True):
        if isinstance(first, list) and first:
            queued_ms = int(first[0][0].split(b"-")[0])
            waits[lane] = max(0, now_ms - queued_ms) / 1000
    return waits


async def dead_letter_length(r: Redis, keys: Keys) -> int:
    return int(await r.xlen(keys.dead_letter))


# --------------------------------------------------------------------------- reply streams


# XADD at the writer's sequence id, then PUBLISH only if the XADD took: a writer whose sequence
# number is already taken (its entry was taken over, or the client's cancellation recorded)
# must not have its record relayed live either. redis.call raises on the refused XADD, so the
# script stops there and the caller sees the XADD's error (is_seq_taken). One EVAL, one round
# trip, as the plain commands were; Redis caches the compiled script by its body's digest.
# KEYS[1] reply stream; ARGV: entry id, record field, record, ttl (0: leave it), channel
# ("": store only, for the PARTs of a large response), message prefix ("<request id>|").
