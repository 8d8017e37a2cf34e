"""Reply delivery inside a front door: one pub/sub subscription per process carries the
records of every request this front door waits on; the reply streams in Redis are the
durable copy used to fill gaps, to recover from a lost subscription, and to resume.

Why pub/sub and not one XREAD over every open reply stream: an XREAD lists every stream
on every call, so its cost grows with the number of open streams (thousands), while a
published record costs the same however many are open. Round trips per record: the
worker's one pipelined write (XADD + PUBLISH); the front door reads nothing.

The listener and the epoch watch run under the front door's `Supervisor`. The listener
outlives every Redis error (it subscribes again); if it ends all the same, the front door
reports not ready and stops (broker/frontdoor.py). Its first subscription is bounded: a
front door that cannot hear replies does not start.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from workers import redis_streams
from workers.envelopes import Envelope, Record, decode_record
from workers.redis_streams import Keys, LiveRecords
from workers.supervision import Supervisor

log = logging.getLogger("switchboard.relay")

RECONNECT_DELAY_S = 0.2
# How long a starting front door waits for Redis to confirm its reply subscription.
SUBSCRIBE_TIMEOUT_S = 10.0
# The names of the hub's tasks in its owner's Supervisor (readiness shows a dead one's).
LISTENER = "reply listener"
EPOCH_WATCH = "epoch watch"
# A waiter that has heard nothing for this long reads its reply stream, in case a
# published record was lost (a subscription dropped and came back in between).
IDLE_POLL_S = 5.0


class Waiter:
    """The records of one request, in sequence order, without duplicates or gaps."""

    __slots__ = (
        "request_id",
        "next_seq",
        "queued",
        "_hub",
        "_buffer",
        "_wakeup",
        "_is_stale",
    )

    def __init__(self, hub: ReplyHub, request_id: str) -> None:
        self.request_id = request_id
        self.next_seq = 1
        # Where the request was queued, to queue it again if Redis loses it.
        self.queued: Queued | None = None
        self._hub = hub
        self._buffer: deque[Record] = deque()
        self._wakeup: asyncio.Future[None] | None = None
        self._is_stale = False

    def mark_stale(self) -> None:
        """Published records may have been lost: reread the reply stream before waiting."""
        self._is_stale = True
        self._wake()

    def deliver(self, record: Record) -> None:
        self._buffer.append(record)
        self._wake()

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def next_record(self, deadline: float) -> Record:
        """The next record; raises TimeoutError at `deadline` (event loop time)."""
        loop = asyncio.get_running_loop()
        while True:
            if self._is_stale and await self._fill_gap():
                self._is_stale = False
            record = await self._next_in_order()
            if record is not None:
                return record
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            self._wakeup = loop.create_future()
            try:
                async with asyncio.timeout(min(remaining, IDLE_POLL_S)):
                    await self._wakeup
            except TimeoutError:
                if loop.time() >= deadline:
                    raise
                await self._fill_gap()
            finally:
                self._wakeup = None

    async def _next_in_order(self) -> Record | None:
        """The buffered record that comes next, if there is one (filling a gap first)."""
        while self._buffer:
            record = self._buffer[0]
            if record.next_seq <= self.next_seq:
                self._buffer.popleft()
                continue  # already delivered (a gap fill raced the live copy)
            if record.seq > self.next_seq:
                if not await self._fill_gap():
                    return None  # Redis unreadable: wait, and try again on the next wake
                record = self._buffer[0]
                if record.next_seq <= self.next_seq:
                    self._buffer.popleft()
                    continue
            self._buffer.popleft()
            self.next_seq = record.next_seq
            return record
        return None

    async def _fill_gap(self) -> bool:
        """Read what we missed from the reply stream and put it first, in order. False when
        Redis cannot be read: the stream waits (up to its stall timeout) rather than dies."""
        try:
            records = await self._hub.read(self.request_id)
        except RedisError as exc:
            log.warning("cannot read the reply of %s yet: %s", self.request_id, exc)
            return False
        missing = [record for record in records if record.next_seq > self.next_seq]
        if missing:
            later = [r for r in self._buffer if r.seq > missing[-1].seq]
            self._buffer = deque(missing + later)
        return True


class Queued(msgspec.Struct):
    """A request's place in a lane: its entry id changes if it is queued again."""

    envelope: Envelope
    entry: bytes


# Called with the waiters whose requests Redis may have lost (queued, nothing heard yet);
# True once every one that was lost is queued again.
OnReset = Callable[[list[Waiter]], Awaitable[bool]]
# How often a front door checks that Redis still holds the data it queued into: a FLUSHDB,
# or a Redis Cluster node that restarts empty, drops no connection of ours.
EPOCH_CHECK_S = 2.0


class SubscribeFailed(Exception):
    """The reply subscription did not start in time: a front door that cannot hear the
    records of its requests must not take any."""


class ReplyHub:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        front_door_id: str | None = None,
        on_reset: OnReset | None = None,
        subscribe_timeout_s: float | None = None,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.front_door_id = front_door_id or uuid.uuid4().hex[:12]
        self.waiters: dict[str, Waiter] = {}
        self.on_reset = on_reset
        self._epoch: bytes | None = None
        self._epoch_lock = asyncio.Lock()
        self._subscribed = asyncio.Event()
        self.subscribe_timeout_s = subscribe_timeout_s or SUBSCRIBE_TIMEOUT_S
        # Why the last subscription attempt failed, for the error if none succeeds.
        self._last_error: BaseException | None = None

    @property
    def channel(self) -> str:
        return self.keys.live_channel(self.front_door_id)

    async def start(self, tasks: Supervisor) -> None:
        """Start the listener and the epoch watch as `tasks`' (which stops them), once the
        subscription is confirmed. Raises SubscribeFailed when it is not within
        `subscribe_timeout_s`, or the listener's death if it dies first."""
        self._epoch = await redis_streams.join_epoch(self.redis, self.keys)
        tasks.start(LISTENER, self._listen)
        # Requests may only be enqueued once their records can be heard.
        await self._wait_subscribed(tasks)
        if self.on_reset is not None:
            tasks.start(EPOCH_WATCH, self._watch_epoch)

    async def _wait_subscribed(self, tasks: Supervisor) -> None:
        subscribed = asyncio.ensure_future(self._subscribed.wait())
        died = asyncio.ensure_future(tasks.wait())
        try:
            await asyncio.wait(
                (subscribed, died),
                timeout=self.subscribe_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            subscribed.cancel()
            died.cancel()
        if self._subscribed.is_set():
            return
        tasks.check()
        raise SubscribeFailed(
            f"Redis did not confirm the reply subscription ({self.channel}) within "
            f"{self.subscribe_timeout_s:g}s; last error: {self._last_error or 'none'}"
        )

    def register(self, request_id: str) -> Waiter:
        waiter = Waiter(self, request_id)
        self.waiters[request_id] = waiter
        return waiter

    def unregister(self, request_id: str) -> None:
        self.waiters.pop(request_id, None)

    async def read(self, request_id: str) -> list[Record]:
        rows = await redis_streams.read_records(self.redis, self.keys, request_id)
        return [decode_record(raw) for _entry, raw in rows]

    async def _listen(self) -> None:
        """Every Redis error, not only a lost connection, ends in a new subscription: a
        NOPERM after an ACL change or a READONLY during a failover passes, and a listener
        that died of one would leave every request of this front door to its idle poll."""
        while True:
            try:
                async with LiveRecords(self.redis, self.keys, self.front_door_id) as live:
                    self._last_error = None
                    if self._subscribed.is_set():
                        self._recover()
                        await self._check_epoch()
                    self._subscribed.set()
                    while True:
                        self._dispatch(*await live.next())
            except (RedisError, OSError) as exc:
                self._last_error = exc
                log.warning("reply subscription lost (%s); resubscribing", exc)
                await asyncio.sleep(RECONNECT_DELAY_S)

    def _dispatch(self, request_id: str, raw: bytes) -> None:
        waiter = self.waiters.get(request_id)
        if waiter is None:
            return  # its client left, or it was resumed elsewhere
        try:
            record = decode_record(raw)
        except msgspec.DecodeError:
            log.error("undecodable record for %s", request_id)
            return
        waiter.deliver(record)

    async def _watch_epoch(self) -> None:
        while True:
            await asyncio.sleep(EPOCH_CHECK_S)
            await self._check_epoch()

    async def _check_epoch(self) -> None:
        """Did Redis lose its data (a restart without persistence, a FLUSHDB)? Then the
        requests it held in queues are gone, and waiting for their replies would last until
        their deadlines. Never raises: it runs in the listener and the watch, which must live."""
        if self.on_reset is None:
            return
        async with self._epoch_lock:
            try:
                epoch = await redis_streams.join_epoch(self.redis, self.keys)
                if epoch == self._epoch:
                    return
                # A request that has produced a record is running at a worker, which carries
                # on and writes the rest into the new reply stream. One that has not may have
                # been waiting in a lane; on_reset queues again those Redis no longer has.
                candidates = [
                    w for w in self.waiters.values() if w.next_seq == 1 and w.queued is not None
                ]
                log.warning(
                    "redis lost its data (restarted without persistence? flushed?); "
                    "checking %d waiting requests",
                    len(candidates),
                )
                # The epoch moves on only when every lost request is queued again, so a
                # failure here is retried on the next check.
                if await self.on_reset(candidates):
                    self._epoch = epoch
            except Exception:
                log.exception("could not check whether redis kept its data; will retry")

    def _recover(self) -> None:
        """After a lost subscription, every waiter rereads its stream on its next wait."""
        for waiter in self.waiters.values():
            waiter.mark_stale()
