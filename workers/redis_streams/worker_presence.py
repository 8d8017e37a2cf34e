"""Workers seen alive: heartbeats, self-descriptions, and forgetting one that left."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from workers.redis_streams.key_names import Keys


class WorkerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What a worker's heartbeat says of it: the fields of its hash (keys.worker_info),
    written by the worker, read by front doors' monitors. A field missing (the hash expired
    between two reads) or unreadable reads as its default."""

    pid: int = 0
    host: str = ""
    in_flight: int = 0
    concurrency: int = 0
    # Unix seconds the worker started.
    started: float = 0.0


# The heartbeat takes Redis's own clock (TIME), as the takeover check does (SILENT_SCRIPT):
# a grace of a second cannot depend on hosts' clocks agreeing. Scripts may call TIME before
# writing since Redis 5 (effects replication). KEYS: heartbeats, worker info hash; ARGV:
# worker id, seconds a dead member is kept, seconds the hash lives, then field/value pairs.
HEARTBEAT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('HSET', KEYS[2], unpack(ARGV, 4))
redis.call('EXPIRE', KEYS[2], ARGV[3])
return 1
"""


def heartbeat(pipe: Pipeline, keys: Keys, worker_id: str, info: WorkerInfo, ttl_s: float) -> None:
    """One heartbeat: the worker's id at Redis's time, its self-description, and the pruning
    of members silent for 10 x `ttl_s`. One script call."""
    fields: list[Any] = []
    for name, value in msgspec.structs.asdict(info).items():
        fields += [name, value]
    pipe.eval(
        HEARTBEAT_SCRIPT,
        2,
        keys.heartbeats,
        keys.worker_info(worker_id),
        worker_id,
        10 * ttl_s,
        max(1, int(ttl_s * 2)),
        *fields,
    )


async def worker_infos(
    r: Redis, keys: Keys, worker_ids: Sequence[str]
) -> tuple[list[WorkerInfo], float | None]:
    """The heartbeat fields of each worker, and when the freshest heartbeat of all came (unix
    seconds; None without any). One round trip."""
    pipe = r.pipeline(transaction=False)
    for worker_id in worker_ids:
        pipe.hgetall(keys.worker_info(worker_id))
    pipe.zrevrange(keys.heartbeats, 0, 0, withscores=True)
    rows: Any = await pipe.execute()
    freshest = rows[-1]
    return [_worker_info(raw) for raw in rows[:-1]], float(freshest[0][1]) if freshest else None


def _worker_info(raw: dict[bytes, bytes]) -> WorkerInfo:
    fields = {
        key.decode(errors="replace"): value.decode(errors="replace") for key, value in raw.items()
    }
    known = {name: fields[name] for name in WorkerInfo.__struct_fields__ if name in fields}
    try:
        return msgspec.convert(known, WorkerInfo, strict=False)
    except msgspec.ValidationError:
        return WorkerInfo()


async def live_workers(r: Redis, keys: Keys, now_s: float, ttl_s: float) -> list[str]:
    members: Any = await r.zrangebyscore(keys.heartbeats, now_s - ttl_s, "+inf")
    return [m.decode() for m in members]


async def forget_worker(r: Redis, keys: Keys, worker_id: str) -> None:
    pipe = r.pipeline(transaction=False)
    pipe.zrem(keys.heartbeats, worker_id)
    pipe.delete(keys.worker_info(worker_id))
    await pipe.execute()


# --------------------------------------------------------------------------- console sessions
