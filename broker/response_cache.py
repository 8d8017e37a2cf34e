"""The response cache at the front door (issue #19): a hit is answered here, without a
queue entry, a worker or an upstream call; a miss goes the usual way and its answer is
stored after the client has it. Rules (key, controls, replay) live in workers/hooks/cache.py.

Redis is the broker's own unless `cache_params` names another. A cache that Redis cannot
serve is a miss, never an error: the request goes upstream as if there were no cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker import sse_frames
from broker.auth import Caller
from broker.config.loader import Config
from broker.errors import JSON
from broker.frontdoor import FrontDoor
from broker.hooks import FRONT_HOOKS
from broker.relay import Relay
from workers import envelopes
from workers.connect import connect
from workers.envelopes import KIND_CHAT, KIND_EMBEDDING, Meta, Record
from workers.hooks.cache import (
    CachedAnswer,
    cache_digest,
    control_of,
    decode_answer,
    encode_answer,
    is_cacheable,
    replay_chunks,
)
from workers.hooks.service import FrontDoorAnswer, ServiceHooks
from workers.redis_streams import Keys
from workers.sdk.assemble import stream_chunk_builder
from workers.settings.hooks import CacheParams
from workers.supervision import Supervisor
from workers.wire import decode_chunk, encode

log = logging.getLogger("switchboard.cache")

CACHE_HEADER = "x-switchboard-cache"
POOL_SIZE = 32


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
    ) -> tuple[web.StreamResponse | None, Pending | None]:
        """(a hit's response, or None; what a miss should store, or None)."""
        started_s = time.time()
        parsed = orjson.loads(body)
        control = control_of(parsed, request.headers.get("Cache-Control"))
        if not is_cacheable(self.params, kind, control):
            return None, None
        scope = caller.alias if self.params.scope == "key" else None
        key = self.keys.cached_answer(
            control.namespace or self.params.namespace, cache_digest(parsed, group, kind, scope)
        )
        if not control.no_cache:
            cached = await self._read(key)
            if cached is not None and (
                control.max_age_s is None or cached.age_s <= control.max_age_s
            ):
                self.metrics.lookups.labels(group, "hit").inc()
                if cached.cost_usd:
                    self.metrics.saved_cost.labels(group).inc(cached.cost_usd)
                request_id = caller.new_request_id()
                if self.hooks is not None:
                    self.hooks.dispatcher.offer(
                        FrontDoorAnswer(
                            request_id=request_id,
                            kind=KIND_CHAT if kind == "chat" else KIND_EMBEDDING,
                            model_group=group,
                            body=body,
                            started_s=started_s,
                            stream=stream,
                            api_key_alias=caller.alias,
                            response=cached.body,
                        )
                    )
                if stream:
                    return await _replay(request, cached, request_id, include_usage), None
                headers = {"x-request-id": request_id, CACHE_HEADER: "hit"}
                headers["x-switchboard-cost-usd"] = "0"
                return web.Response(body=cached.body, content_type=JSON, headers=headers), None
        self.metrics.lookups.labels(group, "miss").inc()
        if control.no_store:
            return None, Pending(self, key, None)
        return None, Pending(self, key, control.ttl_s or self.params.ttl)

    async def _read(self, key: str) -> CachedAnswer | None:
        try:
            raw = await self.redis.get(key)
        except RedisError as exc:
            log.warning("response cache unreadable (%s): answering upstream", type(exc).__name__)
            return None
        if raw is None:
            return None
        try:
            return decode_answer(raw)
        except ValueError:
            return None

    async def store(
        self, key: str, ttl_s: float, body: bytes, chunks: list[bytes], meta: Meta | None
    ) -> None:
        if not body and chunks:
            body = encode(stream_chunk_builder([decode_chunk(c) for c in chunks]))
        if not body or len(body) > self.params.max_entry_bytes:
            return
        cost = meta.cost_usd if meta is not None else None
        entry = encode_answer(CachedAnswer(created_s=time.time(), body=body, cost_usd=cost))
        try:
            await self.redis.set(key, entry, px=max(1, int(ttl_s * 1000)))
        except RedisError as exc:
            log.warning("response cache unwritable (%s): answer not stored", type(exc).__name__)


class Pending:
    """A miss: tells the relay to mark its answer `miss`, and stores the answer it gets."""

    def __init__(self, cache: ResponseCache, key: str, ttl_s: float | None) -> None:
        self.cache = cache
        self.key = key
        self.ttl_s = ttl_s

    def attach(self, relay: Relay, tasks: Supervisor) -> None:
        relay.extra_headers[CACHE_HEADER] = "miss"
        ttl_s = self.ttl_s
        if ttl_s is None:
            return  # no-store

        def stored(body: bytes, chunks: list[bytes], meta: Meta | None) -> None:
            tasks.spawn(self.cache.store(self.key, ttl_s, body, chunks, meta), "cache store")

        relay.on_answer = stored


async def _replay(
    request: web.Request, cached: CachedAnswer, request_id: str, include_usage: bool
) -> web.StreamResponse:
    completion: dict[str, Any] = orjson.loads(cached.body)
    chunks = replay_chunks(completion, include_usage=include_usage)
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
