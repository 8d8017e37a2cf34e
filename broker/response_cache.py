"""The response cache at the front door (issue #19): a hit is answered here, without a
queue entry, a worker or an upstream call; a miss goes the usual way and its answer is
stored after the client has it. Rules (key, controls, replay) live in workers/hooks/cache.py.

Redis is the broker's own unless `cache_params` names another. A cache that Redis cannot
serve is a miss, never an error: the request goes upstream as if there were no cache.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from broker import sse_frames
from broker.auth import Caller
from broker.config.loader import Config
from broker.errors import JSON
from broker.frontdoor import FrontDoor
from broker.hooks import FRONT_HOOKS, answered_here, team_of
from broker.relay import Relay
from workers import envelopes
from workers.batching import WriteBatcher, failure_of
from workers.connect import connect
from workers.envelopes import KIND_CHAT, KIND_EMBEDDING, KIND_TEXT_COMPLETION, Meta, Record
from workers.hooks import api_shapes
from workers.hooks.cache import (
    CachedAnswer,
    cache_digest,
    control_of,
    decode_answer,
    encode_answer,
    is_cacheable,
)
from workers.hooks.replay import replay
from workers.hooks.service import FrontDoorAnswer, ServiceHooks
from workers.redis_streams import Keys
from workers.settings.hooks import CacheParams
from workers.supervision import Supervisor

log = logging.getLogger("switchboard.cache")

CACHE_HEADER = "x-switchboard-cache"
# What the callbacks are told a hit was (an Anthropic or Responses hit is a chat call).
_KINDS = {"embedding": KIND_EMBEDDING, "text_completion": KIND_TEXT_COMPLETION}
POOL_SIZE = 32
# How often a request waiting on an identical one in flight looks for its answer.
FOLLOW_POLL_S = 0.02


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.lookups = Counter(
            "switchboard_cache_lookups_total",
            "Requests the response cache looked up, by result: hit or miss.",
            ["model_group", "result"],
            registry=registry,
        )
        self.saved_cost = Counter(
            "switchboard_cache_saved_cost_usd_total",
            "What the answers served from the cache cost when they were first made.",
            ["model_group"],
            registry=registry,
        )


class ResponseCache:
    def __init__(
        self,
        params: CacheParams,
        redis: Redis,
        keys: Keys,
        metrics: CacheMetrics,
        hooks: ServiceHooks | None = None,
    ) -> None:
        self.params = params
        self.redis = redis
        # Lookups and stores of one loop turn share a round trip (under load, dozens of
        # requests'), and a store needs no task of its own: its reply is only logged.
        self.batcher = WriteBatcher(redis)
        self.keys = keys
        self.metrics = metrics
        # The front door's callbacks: a hit is a request no worker sees.
        self.hooks = hooks

    async def answer(
        self,
        request: web.Request,
        body: bytes,
        *,
        kind: str,
        group: str,
        caller: Caller,
        stream: bool = False,
        include_usage: bool = False,
        vary: dict[str, str] | None = None,
    ) -> tuple[web.StreamResponse | None, Pending | None]:
        """(a hit's response, or None; what a miss should store, or None). `vary`: request
        headers that change the answer."""
        started_s = time.time()
        parsed = orjson.loads(body)
        control = control_of(parsed, request.headers.get("Cache-Control"))
        if not is_cacheable(self.params, kind, control) or parsed.get("background") is True:
            return None, None
        scope = caller.alias if self.params.scope == "key" else None
        if kind == api_shapes.RESPONSES:
            # A response is its caller's stored object, and a follow-up reads the caller's
            # own conversation: one caller never gets another's response (or its id).
            scope = "owner:" + caller.owner
        digest = cache_digest(parsed, group, kind, scope, vary)
        key = self.keys.cached_answer(control.namespace or self.params.namespace, digest)
        cached = None if control.no_cache else await self._read(key)
        if cached is not None and (control.max_age_s is None or cached.age_s <= control.max_age_s):
            return await self._hit(
                request, cached, body, kind, group, caller, stream, include_usage, started_s
            ), None
        lock = None
        if self.params.coalesce and not control.no_store:
            # Single flight: one front door's request goes upstream, identical ones wait.
            lock = self.keys.cached_answer_lock(key)
            if not await self._lead(lock):
                cached = await self._follow(key, lock)
                if cached is not None:
                    return await self._hit(
                        request, cached, body, kind, group, caller, stream, include_usage, started_s
                    ), None
                lock = None  # the leader gave no answer in time: go upstream too
        self.metrics.lookups.labels(group, "miss").inc()
        if control.no_store:
            return None, Pending(self, kind, key, None)
        return None, Pending(self, kind, key, control.ttl_s or self.params.ttl, lock)

    async def _hit(
        self,
        request: web.Request,
        cached: CachedAnswer,
        body: bytes,
        kind: str,
        group: str,
        caller: Caller,
        stream: bool,
        include_usage: bool,
        started_s: float,
    ) -> web.StreamResponse:
        self.metrics.lookups.labels(group, "hit").inc()
        if cached.cost_usd:
            self.metrics.saved_cost.labels(group).inc(cached.cost_usd)
        request_id = caller.new_request_id()
        if self.hooks is not None:
            answered_here(
                self.hooks,
                FrontDoorAnswer(
                    request_id=request_id,
                    kind=_KINDS.get(kind, KIND_CHAT),
                    model_group=group,
                    body=body,
                    started_s=started_s,
                    stream=stream,
                    api_key_alias=caller.alias,
                    response=cached.body,
                    team_id=team_of(caller),
                ),
            )
        if stream:
            return await _replay(request, kind, cached, request_id, include_usage)
        headers = {"x-request-id": request_id, CACHE_HEADER: "hit", "x-switchboard-cost-usd": "0"}
        return web.Response(body=cached.body, content_type=JSON, headers=headers)

    async def _lead(self, lock: str) -> bool:
        """Whether this request goes upstream for its key (it took the lock)."""
        try:
            took = await self.redis.set(
                lock, b"1", nx=True, px=int(self.params.coalesce_wait_s * 1000)
            )
        except RedisError:
            return True
        return bool(took)

    async def _follow(self, key: str, lock: str) -> CachedAnswer | None:
        """Wait for the leader's answer: until it is stored, or the lock is gone without
        one (the leader failed), or `coalesce_wait_s`."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + self.params.coalesce_wait_s
        while loop.time() < give_up_at:
            await asyncio.sleep(FOLLOW_POLL_S)
            try:
                raw, held = await self._read_both(key, lock)
            except RedisError:
                return None
            if raw is not None:
                return decode_answer(raw)
            if not held:
                return None
        return None

    async def _read_both(self, key: str, lock: str) -> tuple[bytes | None, bool]:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(key)
            pipe.exists(lock)
            raw, held = await pipe.execute()
        return raw, bool(held)

    async def release(self, lock: str) -> None:
        try:
            await self.redis.delete(lock)
        except RedisError as exc:
            log.warning("cache lock not released (%s): it expires", type(exc).__name__)

    async def _read(self, key: str) -> CachedAnswer | None:
        try:
            (raw,) = await self.batcher.write(lambda pipe: _queued(pipe.get(key)))
            if isinstance(raw, Exception):
                raise raw
        except RedisError as exc:
            log.warning("response cache unreadable (%s): answering upstream", type(exc).__name__)
            return None
        if raw is None:
            return None
        try:
            return decode_answer(raw)
        except ValueError:
            return None

    def store(
        self,
        kind: str,
        key: str,
        ttl_s: float,
        body: bytes,
        chunks: list[bytes],
        meta: Meta | None,
        lock: str | None = None,
    ) -> None:
        """Store an answer (and release a coalescing leader's lock) on this loop turn's
        shared round trip; the caller does not wait for it."""
        entry = self._entry(kind, body, chunks, meta)
        if entry is None and lock is None:
            return
        px = max(1, int(ttl_s * 1000))

        def build(pipe: Pipeline) -> int:
            if entry is not None:
                pipe.set(key, entry, px=px)
            if lock is not None:
                pipe.delete(lock)  # after the answer: a follower then finds it
            return int(entry is not None) + int(lock is not None)

        self.batcher.queue(build).add_done_callback(_log_store_failure)

    def _entry(
        self, kind: str, body: bytes, chunks: list[bytes], meta: Meta | None
    ) -> bytes | None:
        """What the cache keeps for an answer; None for one it does not keep."""
        if not body and chunks:
            try:
                body = api_shapes.assemble(kind, chunks) or b""
            except (KeyError, TypeError, ValueError) as exc:  # events outside their API's shape
                log.warning("streamed %s answer not stored (%s)", kind, type(exc).__name__)
                return None
        if not body or len(body) > self.params.max_entry_bytes:
            return None
        cost = meta.cost_usd if meta is not None else None
        return encode_answer(CachedAnswer(created_s=time.time(), body=body, cost_usd=cost))


def _queued(_: object) -> int:
    """A batch builder's count for one command queued on the pipeline."""
    return 1


def _log_store_failure(done: asyncio.Future[list[Any]]) -> None:
    failure = failure_of(done)
    if failure is not None:
        # The answer is simply not cached (a lock left behind expires by itself).
        log.warning("response cache unwritable (%s): answer not stored", type(failure).__name__)


class Pending:
    """A miss: tells the relay to mark its answer `miss`, and stores the answer it gets; as
    a coalescing leader, releases its lock once stored, or at once without an answer."""

    def __init__(
        self,
        cache: ResponseCache,
        kind: str,
        key: str,
        ttl_s: float | None,
        lock: str | None = None,
    ) -> None:
        self.cache = cache
        self.kind = kind
        self.key = key
        self.ttl_s = ttl_s
        self.lock = lock
        self.is_answered = False

    def attach(self, relay: Relay) -> None:
        relay.extra_headers[CACHE_HEADER] = "miss"
        ttl_s = self.ttl_s
        if ttl_s is None:
            return  # no-store

        def stored(body: bytes, chunks: list[bytes], meta: Meta | None) -> None:
            self.is_answered = True
            self.cache.store(self.kind, self.key, ttl_s, body, chunks, meta, self.lock)

        relay.on_answer = stored

    def settle(self, tasks: Supervisor) -> None:
        """After the relay: a leader without an answer (an error, a cancellation) lets the
        requests waiting on it go upstream themselves."""
        if self.lock is not None and not self.is_answered:
            tasks.spawn(self.cache.release(self.lock), "cache lock release")


async def _replay(
    request: web.Request, kind: str, cached: CachedAnswer, request_id: str, include_usage: bool
) -> web.StreamResponse:
    """A hit as the stream the caller's API sends (workers/hooks/replay.py), framed as the
    relay frames a worker's events."""
    chunks = replay(kind, cached.body, include_usage=include_usage)
    headers = {**sse_frames.HEADERS, "x-request-id": request_id, CACHE_HEADER: "hit"}
    headers["x-switchboard-cost-usd"] = "0"
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    await response.write(sse_frames.frame(Record(seq=1, chunks=chunks, end=envelopes.DONE)))
    await response.write_eof()
    return response


RESPONSE_CACHE = web.AppKey("response_cache", ResponseCache)


def response_cache_ctx(
    config: Config, front_door: web.AppKey[FrontDoor]
) -> Callable[[web.Application], AsyncIterator[None]]:
    """After the front door's own context: its metrics always (the catalog lists them),
    the cache when `litellm_settings.cache` is on."""
    settings = config.litellm_settings

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        front = app[front_door]
        metrics = CacheMetrics(front.metrics.registry)
        if not settings.cache:
            yield
            return
        params = settings.cache_params
        own = _own_redis(params)
        redis = own if own is not None else front.redis
        hooks = app.get(FRONT_HOOKS)
        app[RESPONSE_CACHE] = ResponseCache(params, redis, front.keys, metrics, hooks)
        try:
            yield
        finally:
            await app[RESPONSE_CACHE].batcher.aclose()  # the last answers' stores land
            if own is not None:
                await own.aclose()

    return ctx


def _own_redis(params: CacheParams) -> Redis | None:
    if params.url:
        return connect(params.url, max_connections=POOL_SIZE)
    if params.host:
        password = f":{quote(params.password, safe='')}@" if params.password else ""
        return connect(
            f"redis://{password}{params.host}:{params.port or 6379}", max_connections=POOL_SIZE
        )
    return None
