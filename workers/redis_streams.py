"""Every Redis key name, field name, TTL and stream operation Switchboard uses.

Layout (namespace `ns`: switchboard_settings.namespace):

    {ns}:{q}:lane:<lane>      request stream per lane; consumer group "workers"
    {ns}:{q}:dead             dead-letter stream (entries delivered too often)
    {ns}:{<rid>}:reply        reply stream of one request (expires reply_ttl_s after its end)
    {ns}:{<rid>}:state        who owns a disconnected request: "cancelled" or "resumed:<fd>"
    {ns}:live:<front door>    pub/sub: records for the requests a front door waits on
    {ns}:cancel               pub/sub: request ids whose clients went away
    {ns}:console:<sid hash>   string: a console session (broker/console/sessions.py), expires
    {ns}:gone                 pub/sub: ids of workers known dead (their entries: take over now)
    {ns}:{w}:heartbeats       sorted set: worker id -> last heartbeat (Redis's clock, unix s)
    {ns}:{w}:worker:<id>      hash: a worker's self-description, expires with its heartbeat
    {ns}:{rt:<group>}:owners      sorted set: routing owner (a worker) -> expiry (unix ms)
    {ns}:{rt:<group>}:inflight    hash: "<owner>|<deployment>" -> requests in flight
    {ns}:{rt:<group>}:stats       hash: "lat|<d>", "ttft|<d>" -> moving averages (ms)
    {ns}:{rt:<group>}:usage:<min> hash: "rpm|<d>", "tpm|<d>", "fail|<d>|<class>" per minute
    {ns}:{rt:<group>}:cooldowns   hash: deployment -> cooled down until (unix ms)
    {ns}:{rt:<group>}:cursor      counter for round-robin
    {ns}:{q}:t:mirror:<kind>:<id> string: a key, team, user, member, customer or org as
                                  mirrored from the database (workers/tenancy/mirror.py)
    {ns}:{q}:t:win:<scope>        hash: "r<unix s>", "t<unix s>" -> requests, tokens (60 s)
    {ns}:{q}:t:lease:<scope>      sorted set: request id -> lease expiry (unix ms)
    {ns}:{q}:t:spend:<scope>      hash: s (spent), r (reserved), e (period end, unix ms)
    {ns}:{q}:t:res:<rid>          hash: one admitted request's reservation, until settled
    {ns}:{q}:t:inflight           sorted set: admitted request id -> reservation expiry (ms)
    {ns}:{q}:t:ledger             stream: spend events; consumer group "ledger"
    {ns}:{q}:t:mirror-filled      string: the mirror was refilled from the database
    {ns}:tenancy                  pub/sub: mirrored entities that changed ("<kind>:<id>")

Braces are Redis Cluster hash tags: a request's keys share a slot, and all lanes share one
slot so one XREADGROUP reads every lane without a cross-slot command. The tenancy keys
(`t:`) share the lanes' slot too: admission checks every limit and XADDs the request in one
script, which in a cluster must touch one slot (issue #17). A model group's
routing keys share a slot, so each routing script touches one slot (workers/routing/).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncGenerator, Awaitable, Iterable, Sequence
from typing import Any, cast

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import (
    ClusterDownError,
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)

from workers.envelopes import decode_envelope, live_message, split_live_message

GROUP = "workers"
ENVELOPE_FIELD = b"e"
RECORD_FIELD = b"r"
DEAD_LETTER_MAXLEN = 100_000
STATE_CANCELLED = b"cancelled"


class Keys:
    """Key names for one namespace (tests use one namespace each)."""

    def __init__(self, namespace: str) -> None:
        self.ns = namespace
        self.dead_letter = f"{namespace}:{{q}}:dead"
        self.cancel_channel = f"{namespace}:cancel"
        self.gone_channel = f"{namespace}:gone"
        self.heartbeats = f"{namespace}:{{w}}:heartbeats"
        # In the lanes' slot: whatever loses the queues loses this too.
        self.epoch = f"{namespace}:{{q}}:epoch"

    def lane(self, lane: str) -> str:
        return f"{self.ns}:{{q}}:lane:{lane}"

    def reply(self, request_id: str) -> str:
        return f"{self.ns}:{{{request_id}}}:reply"

    def state(self, request_id: str) -> str:
        return f"{self.ns}:{{{request_id}}}:state"

    def live_channel(self, front_door_id: str) -> str:
        return f"{self.ns}:live:{front_door_id}"

    def console_session(self, sid_hash: str) -> str:
        return f"{self.ns}:console:{sid_hash}"

    def worker_info(self, worker_id: str) -> str:
        return f"{self.ns}:{{w}}:worker:{worker_id}"

    def response(self, response_id: str) -> str:
        """A stored Responses API response (issue #18). Its id carries its conversation's
        tag (workers/ingress/response_store.py), so a chain of responses shares one slot and
        one script walks it."""
        return self.responses(response_id[5:21]) + response_id

    def responses(self, conversation: str) -> str:
        """The prefix of one conversation's stored responses."""
        return f"{self.ns}:{{r:{conversation}}}:resp:"

    def routing(self, group: str) -> RoutingKeys:
        return RoutingKeys(f"{self.ns}:{{rt:{group}}}")

    def cached_answer(self, namespace: str, digest: str) -> str:
        """A response cache entry (issue #19; broker/response_cache.py): a plain string with
        its own TTL, read and written on its own, so it needs no hash tag."""
        return f"{self.ns}:cache:{namespace}:{digest}"

    @property
    def tenancy(self) -> TenancyKeys:
        return TenancyKeys(f"{self.ns}:{{q}}:t", f"{self.ns}:tenancy")

    def batch(self, batch_id: str) -> BatchKeys:
        return BatchKeys(self.ns, batch_id)


class TenancyKeys:
    """Keys, limits, budgets and spend of issue #17 (workers/tenancy/). A scope names what a
    limit counts: `key:<hash>`, `team:<id>`, `user:<id>`, `member:<team>:<user>`,
    `customer:<id>`, `org:<id>`, `model:<key hash>:<group>` or `global`."""

    LEDGER_GROUP = "ledger"
    EVENT_FIELD = b"e"
    WORKER_FIELD = b"w"
    SOFT_FIELD = b"x"
    REQUEST_FIELD = b"id"

    def __init__(self, prefix: str, channel: str) -> None:
        self.prefix = prefix
        self.channel = channel
        self.inflight = f"{prefix}:inflight"
        self.ledger = f"{prefix}:ledger"
        # Set once the mirror was refilled from the database (gone with Redis's data).
        self.filled = f"{prefix}:mirror-filled"

    def mirror(self, kind: str, object_id: str) -> str:
        return f"{self.prefix}:mirror:{kind}:{object_id}"

    def window(self, scope: str) -> str:
        return f"{self.prefix}:win:{scope}"

    def lease(self, scope: str) -> str:
        return f"{self.prefix}:lease:{scope}"

    def spend(self, scope: str) -> str:
        return f"{self.prefix}:spend:{scope}"

    def reservation(self, request_id: str) -> str:
        return f"{self.prefix}:res:{request_id}"

    def scope_keys(self, scope: str) -> tuple[str, str, str]:
        """A scope's counters, in the order the admission and settle scripts take them."""
        return self.window(scope), self.lease(scope), self.spend(scope)


class BatchKeys:
    """One batch's control keys (issue #20): who runs it, whether it is to stop, and which
    of its lines are queued."""

    def __init__(self, namespace: str, batch_id: str) -> None:
        self.active = f"{namespace}:batches:active"
        self.lease = f"{namespace}:batch:{batch_id}:lease"
        self.cancel = f"{namespace}:batch:{batch_id}:cancel"
        self.sent = f"{namespace}:batch:{batch_id}:sent"


class RoutingKeys:
    """One model group's live routing figures (workers/routing/redis_store.py)."""

    # Usage counters outlive their minute a little so a late reader still finds them.
    USAGE_TTL_S = 120

    def __init__(self, prefix: str) -> None:
        self.owners = f"{prefix}:owners"
        self.inflight = f"{prefix}:inflight"
        self.stats = f"{prefix}:stats"
        self.cooldowns = f"{prefix}:cooldowns"
        self.cursor = f"{prefix}:cursor"
        self._prefix = prefix

    def usage(self, minute: int) -> str:
        return f"{self._prefix}:usage:{minute}"


def entry_id(seq: int) -> str:
    """The reply-stream entry id of the record whose first event is `seq`."""
    return f"0-{seq}"


def seq_of(entry: bytes | str) -> int:
    text = entry.decode() if isinstance(entry, bytes) else entry
    return int(text.partition("-")[2])


# --------------------------------------------------------------------------- request streams


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
    return sorted(_text(member) for member in members)


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
    return bool(await _eval(r, _RENEW_LEASE, keys.batch(batch_id).lease, holder, ttl_ms))


async def release_lease(r: Redis, keys: Keys, batch_id: str, holder: str) -> None:
    await _eval(r, _RELEASE_LEASE, keys.batch(batch_id).lease, holder)


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
    return {int(index): _text(value) for index, value in raw.items()}


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


async def put_console_session(
    r: Redis, keys: Keys, sid_hash: str, session: bytes, ttl_s: int
) -> None:
    await r.set(keys.console_session(sid_hash), session, ex=ttl_s)


async def get_console_session(r: Redis, keys: Keys, sid_hash: str) -> bytes | None:
    value: bytes | None = await r.get(keys.console_session(sid_hash))
    return value


async def drop_console_session(r: Redis, keys: Keys, sid_hash: str) -> None:
    await r.delete(keys.console_session(sid_hash))


# --------------------------------------------------------------------------- front doors


# A resumed request's state value names the front door that follows it now.
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


async def announce_gone(r: Redis, keys: Keys, worker_id: str) -> None:
    """Tell every worker that `worker_id` is dead (its process exited: `up` saw it, or it
    drained leaving entries), so one takes its entries over now rather than after the grace."""
    await r.publish(keys.gone_channel, worker_id)


async def notices(r: Redis, keys: Keys) -> AsyncGenerator[tuple[bool, str], None]:
    """What workers are told, as it is published, until the subscription fails (the caller
    subscribes again): (False, id of a request whose client went away) or (True, id of a
    worker known dead)."""
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    gone = keys.gone_channel.encode()
    try:
        await pubsub.subscribe(keys.cancel_channel, keys.gone_channel)
        async for message in pubsub.listen():
            # Not UTF-8 (another publisher on the channel): names nothing of ours.
            text = bytes(message["data"]).decode(errors="replace")
            yield bytes(message["channel"]) == gone, text
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py


async def tenancy_changes(r: Redis, keys: Keys) -> AsyncGenerator[str, None]:
    """`<kind>:<id>` of each mirrored entity that changed (workers/tenancy/mirror.py), as
    published, until the subscription fails (the caller subscribes again)."""
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(keys.tenancy.channel)
        async for message in pubsub.listen():
            yield bytes(message["data"]).decode(errors="replace")
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # unannotated in redis-py


# --------------------------------------------------------------------------- takeovers
# A worker's consumer name in the group is its worker id (read_requests), the member of the
# heartbeats set, so a silent member names the consumer whose entries to take (issue #15).


async def holders(r: Redis, keys: Keys, lanes: Sequence[str]) -> dict[str, set[str]]:
    """Per lane, the consumers holding entries (XPENDING's summary). One round trip."""
    pipe = r.pipeline(transaction=False)
    for lane in lanes:
        pipe.xpending(keys.lane(lane), GROUP)
    summaries: Any = await pipe.execute()
    found: dict[str, set[str]] = {}
    for lane, summary in zip(lanes, summaries, strict=True):
        names = {_text(c["name"]) for c in summary.get("consumers") or () if int(c["pending"])}
        if names:
            found[lane] = names
    return found


async def _eval(r: Redis, script: str, key: str, *args: Any) -> Any:
    """A one-key script's reply (redis-py types EVAL for its sync and async clients at once)."""
    return await cast("Awaitable[Any]", r.eval(script, 1, key, *args))


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


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
    reply: Any = await _eval(r, SILENT_SCRIPT, keys.heartbeats, grace_s, *worker_ids)
    now = float(reply[0])
    rows = [_text(item) for item in reply[1:]]
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
    reply: Any = await _eval(r, TAKE_OVER_SCRIPT, keys.lane(lane), GROUP, silent, consumer, count)
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
    lost: Any = await _eval(r, RENEW_SCRIPT, keys.lane(lane), GROUP, consumer, *entries)
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
    done: Any = await _eval(r, HAND_BACK_SCRIPT, keys.lane(lane), GROUP, entry, consumer, to)
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
