"""Live routing figures in Redis, shared by every worker of the cluster.

Each operation is one script call on one model group's slot; liveness of this worker's
in-flight accounting is renewed by `keep_alive`, so a crashed worker's count expires.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any, cast, get_args

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from workers.batching import Build, WriteBatcher, failure_of
from workers.redis_streams import Keys, RoutingKeys
from workers.routing import scripts
from workers.routing.figures import DeploymentFigures, parse_snapshot, script_keys
from workers.routing.store import EWMA_ALPHA, Admission, AttemptResult, Limits

log = logging.getLogger("switchboard.routing")
ADMISSIONS = frozenset(get_args(Admission))
# A release that failed is tried again this many times, backing off from 0.2 s.
RELEASE_ATTEMPTS = 5
# How long a closing store waits for releases still being retried.
RETRY_WAIT_S = 5.0
# How long a count nobody waits on may wait for a batch to ride (the request's own final
# record, at one request at a time) before it goes out alone. Only in-flight and rpm/tpm
# figures lag by it, and only for a group's one unlimited deployment, which nothing reads
# them to route or refuse.
COUNT_RIDE_S = 0.05


class RedisFigures:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        owner: str,
        *,
        owner_ttl_s: float = 5.0,
        stats_ttl_s: float = 3600.0,
        batcher: WriteBatcher | None = None,
    ) -> None:
        if "|" in owner:
            raise ValueError("a routing owner id must not contain '|'")
        self.redis = redis
        self.keys = keys
        self.owner = owner
        self.owner_ttl_s = owner_ttl_s
        self.stats_ttl_s = max(1, int(stats_ttl_s))
        self._snapshot = redis.register_script(scripts.SNAPSHOT)
        self._admit = redis.register_script(scripts.ACQUIRE)
        self._release = redis.register_script(scripts.RELEASE)
        self._groups: dict[str, RoutingKeys] = {}
        # With a batcher, concurrent requests' admissions and releases (and the worker's reply
        # writes) share round trips: two fewer round trips of their own per request.
        self.batcher = batcher
        self._retries: set[asyncio.Future[Any]] = set()
        # Admissions counted without waiting, per (group, deployment), oldest first, until
        # a release takes them.
        self._counted: dict[tuple[str, str], collections.deque[_Count]] = {}

    def _keys(self, group: str) -> RoutingKeys:
        found = self._groups.get(group)
        if found is None:
            found = self._groups[group] = self.keys.routing(group)
        return found

    async def snapshot(self, group: str, names: Sequence[str]) -> dict[str, DeploymentFigures]:
        now_s = time.time()
        # Batched too, so it reads after any release this worker queued in the same loop turn.
        keys = script_keys(self._keys(group), now_s)
        raw: Any = await self._run(self._snapshot, keys, [_ms(now_s), *names])
        return parse_snapshot(names, raw)

    async def admit(self, group: str, name: str, limits: Limits, prompt_tokens: int) -> Admission:
        keys, args = self._admit_call(group, name, limits, prompt_tokens)
        if self.batcher is None:
            raw: Any = await self._admit(keys=keys, args=args)
        else:
            raw = await self._admit_batched(group, name, keys, args)
        answer = raw.decode() if isinstance(raw, bytes) else str(raw)
        if answer not in ADMISSIONS:
            raise ValueError(f"unexpected admission answer {answer!r}")
        return cast(Admission, answer)

    def _admit_call(
        self, group: str, name: str, limits: Limits, prompt_tokens: int
    ) -> tuple[list[str], list[str | int | float]]:
        now_s = time.time()
        args: list[str | int | float] = [
            _ms(now_s),
            self.owner,
            name,
            limits.rpm or 0,
            limits.tpm or 0,
            limits.max_parallel_requests or 0,
            prompt_tokens,
            _ms(now_s + self.owner_ttl_s),
            RoutingKeys.USAGE_TTL_S,
        ]
        return script_keys(self._keys(group), now_s), args

    async def count_admission(self, group: str, name: str, prompt_tokens: int) -> None:
        """Not awaited, and riding the next batch that goes out (within COUNT_RIDE_S): the
        request's upstream call overlaps the count instead of waiting a round trip for an
        answer that can only be "ok", and at one request at a time the count goes out with
        the request's own release and final record. A release queued while its count is
        unsent joins the same batch behind it; one queued later waits until the count has
        landed, so the two never reach Redis reversed."""
        if self.batcher is None:
            await self.admit(group, name, Limits(), prompt_tokens)
            return
        keys, args = self._admit_call(group, name, Limits(), prompt_tokens)
        sent = self.batcher.queue_rider(self._evalsha(self._admit, keys, args), COUNT_RIDE_S)
        count = _Count(sent, asyncio.get_running_loop().create_future())
        self._counted.setdefault((group, name), collections.deque()).append(count)

        def landed(done: asyncio.Future[Any]) -> None:
            error = failure_of(done)
            if isinstance(error, NoScriptError):
                # Redis lost its script cache (a restart, SCRIPT FLUSH): this loads it again.
                retry = asyncio.ensure_future(self._count_again(group, name, keys, args, count))
                self._retries.add(retry)  # awaited by aclose() like a release's retry
                retry.add_done_callback(self._retries.discard)
                retry.add_done_callback(landed)
                return
            if error is not None:
                log.warning("could not count a routing admission: %s", error)
            if not count.landed.done():
                count.landed.set_result(None)

        sent.add_done_callback(landed)

    async def _count_again(
        self, group: str, name: str, keys: list[str], args: Sequence[Any], count: _Count
    ) -> Any:
        answer = await self._admit(keys=keys, args=args)
        behind = count.release_behind
        if behind is not None and behind.done() and failure_of(behind) is None:
            # The release that rode behind the failed count has landed already: this count
            # comes too late to be taken back by it, so its slot is given back here (its rpm
            # and tpm stay counted).
            await self._release(*self._release_call(group, name, AttemptResult()))
        return answer

    async def _admit_batched(
        self, group: str, name: str, keys: list[str], args: Sequence[Any]
    ) -> Any:
        assert self.batcher is not None
        sent = self.batcher.queue(self._evalsha(self._admit, keys, args))
        try:
            (raw,) = await asyncio.shield(sent)
        except asyncio.CancelledError:
            # The admission goes out with its batch whatever happens to this request: if it
            # took a slot, give it back, or the slot would count while this worker lives.
            sent.add_done_callback(lambda done: self._undo_admission(done, group, name))
            raise
        return await _answer(raw, self._admit, keys, args)

    def _undo_admission(self, done: asyncio.Future[list[Any]], group: str, name: str) -> None:
        if done.cancelled() or done.exception() is not None:
            return
        if done.result()[0] in (b"ok", "ok"):
            self._release_later(*self._release_call(group, name, AttemptResult()))

    async def release(self, group: str, name: str, result: AttemptResult) -> bool:
        counts = self._counted.get((group, name))
        riding: _Count | None = None
        if counts:
            # Counts are interchangeable: each release takes the oldest counted admission
            # and waits for that one to have landed, so Redis never sees more releases than
            # admissions (see count_admission). One future each, whatever the load. A count
            # not sent yet needs no wait: the release joins its batch, behind it.
            oldest = counts.popleft()
            if not counts:
                del self._counted[(group, name)]
            if not oldest.landed.done():
                if self.batcher is not None and self.batcher.is_unsent(oldest.sent):
                    riding = oldest
                else:
                    await asyncio.wait({oldest.landed})
        keys, args = self._release_call(group, name, result)
        if self.batcher is not None and result.cooldown_s == 0:
            # Only a release that may start a cooldown has an answer worth waiting for (to log
            # it). The others are queued now and go out with this turn's batch, which for a
            # finished request also carries its final record, instead of costing the request
            # a round trip of its own.
            sent = self._release_later(keys, args, after=riding)
            if riding is not None:
                riding.release_behind = sent
            return False
        # Shielded: a cancelled request must still give its slot back.
        cooled: Any = await asyncio.shield(self._run(self._release, keys, args))
        return bool(cooled)

    def _release_call(
        self, group: str, name: str, result: AttemptResult
    ) -> tuple[list[str], list[str | int | float]]:
        now_s = time.time()
        args: list[str | int | float] = [
            _ms(now_s),
            self.owner,
            name,
            _sample(result.latency_ms_per_token),
            _sample(result.ttft_ms),
            result.tokens_delta,
            result.failure_class or "",
            result.allowed_fails,
            int(result.cooldown_s * 1000),
            EWMA_ALPHA,
            self.stats_ttl_s,
            RoutingKeys.USAGE_TTL_S,
        ]
        return script_keys(self._keys(group), now_s), args

    def _release_later(
        self, keys: list[str], args: Sequence[Any], *, after: _Count | None = None
    ) -> asyncio.Future[list[Any]]:
        """`after`: the count this release follows in the same batch; a retry of the release
        waits for it, as that count may be being retried itself."""
        assert self.batcher is not None
        sent = self.batcher.queue(self._evalsha(self._release, keys, args))

        def check(done: asyncio.Future[list[Any]]) -> None:
            if failure_of(done) is None:
                return
            # NOSCRIPT (a flushed script cache) or a lost connection: retried, because a
            # release that never lands keeps the slot counted for as long as this worker lives.
            landed = None if after is None else after.landed
            retry = asyncio.ensure_future(self._retry_release(keys, args, landed))
            self._retries.add(retry)
            retry.add_done_callback(self._retries.discard)

        sent.add_done_callback(check)
        return sent

    async def _retry_release(
        self, keys: list[str], args: Sequence[Any], after: asyncio.Future[None] | None = None
    ) -> None:
        if after is not None and not after.done():
            await asyncio.wait({after})
        for attempt in range(RELEASE_ATTEMPTS):
            try:
                await self._release(keys=keys, args=args)  # loads the script if Redis lacks it
                return
            except RedisError as exc:
                if attempt == RELEASE_ATTEMPTS - 1:
                    log.warning("could not release a routing slot: %s", exc)
                    return
                await asyncio.sleep(0.2 * 2**attempt)

    async def aclose(self) -> None:
        """Send what is queued, then let admissions and releases being retried finish (for a
        bounded time: their requests are over, and Redis may be gone)."""
        if self.batcher is not None:
            await self.batcher.aclose()
        if self._retries:
            _, pending = await asyncio.wait(set(self._retries), timeout=RETRY_WAIT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    @staticmethod
    def _evalsha(script: AsyncScript, keys: list[str], args: Sequence[Any]) -> Build:
        def build(pipe: Pipeline) -> int:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
            return 1

        return build

    async def _run(self, script: AsyncScript, keys: list[str], args: Sequence[Any]) -> Any:
        if self.batcher is None:
            return await script(keys=keys, args=args)
        (result,) = await self.batcher.write(self._evalsha(script, keys, args))
        return await _answer(result, script, keys, args)

    async def next_cursor(self, group: str) -> int:
        return int(await self.redis.incr(self._keys(group).cursor))

    async def keep_alive(self, groups: Iterable[str], interval_s: float) -> None:
        """Renew this owner's liveness in every group until cancelled."""
        names = list(groups)
        while True:
            expiry = _ms(time.time() + self.owner_ttl_s)
            pipe = self.redis.pipeline(transaction=False)
            for group in names:
                pipe.zadd(self._keys(group).owners, {self.owner: expiry})
            try:
                await pipe.execute()
            except RedisError as exc:  # also OOM at maxmemory: the renewal must live on
                log.warning("could not renew routing liveness: %s", exc)
            await asyncio.sleep(interval_s)


class _Count:
    """A routing admission counted without waiting for it."""

    __slots__ = ("landed", "release_behind", "sent")

    def __init__(self, sent: asyncio.Future[list[Any]], landed: asyncio.Future[None]) -> None:
        self.sent = sent  # its batch's replies
        self.landed = landed  # resolved once it is in Redis, after a retry if it needed one
        # The release that went out in the same batch, behind it, if one did.
        self.release_behind: asyncio.Future[list[Any]] | None = None


async def _answer(result: Any, script: AsyncScript, keys: list[str], args: Sequence[Any]) -> Any:
    """A batched EVALSHA's reply, or its error raised."""
    if isinstance(result, NoScriptError):
        # Redis lost its script cache (a restart, SCRIPT FLUSH): this call loads it again.
        return await script(keys=keys, args=args)
    if isinstance(result, Exception):
        raise result
    return result


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _sample(value: float | None) -> str:
    return "" if value is None else repr(float(value))
