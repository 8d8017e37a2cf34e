"""The SDK's response cache, set as LiteLLM's is (issue #19):

    switchboard.cache = switchboard.Cache()                       # in this process
    switchboard.cache = switchboard.Cache(type="redis", host="localhost", port=6379)
    switchboard.completion(model=..., messages=...)               # cached (mode default_on)
    switchboard.completion(..., caching=False)                    # not this call
    switchboard.completion(..., cache={"no-cache": True})         # LiteLLM's controls

The key and the per-request controls are the service's (workers/hooks/cache.py), so a
Redis cache is shared with other SDK processes using the same namespace. Non-stream chat
completions and embeddings are cached; a hit is returned without a provider call, with
`hidden_params["cache_hit"]` set and a cost of 0.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from workers.hooks.cache import (
    CacheControl,
    CachedAnswer,
    cache_digest,
    control_of,
    decode_answer,
    encode_answer,
)

if TYPE_CHECKING:
    from redis.asyncio import Redis

# The most answers a local cache holds (the oldest stored leaves first).
LOCAL_MAX_ENTRIES = 10_000


class Cache:
    def __init__(
        self,
        type: Literal["local", "redis"] = "local",
        *,
        host: str | None = None,
        port: int | None = None,
        password: str | None = None,
        url: str | None = None,
        ttl: float = 3600.0,
        namespace: str = "sb-sdk-cache",
        mode: Literal["default_on", "default_off"] = "default_on",
        supported_call_types: tuple[str, ...] = (
            "completion",
            "acompletion",
            "embedding",
            "aembedding",
        ),
    ) -> None:
        self.type = type
        self.ttl = ttl
        self.namespace = namespace
        self.mode = mode
        self.supported_call_types = supported_call_types
        self._url = url or (
            f"redis://{host or 'localhost'}:{port or 6379}" if type == "redis" else None
        )
        self._password = password
        self._redis: Redis | None = None
        self._local: collections.OrderedDict[str, tuple[float, bytes]] = collections.OrderedDict()

    # ------------------------------------------------------------------ storage

    async def get(self, key: str) -> CachedAnswer | None:
        if self.type == "local":
            found = self._local.get(key)
            if found is None or found[0] < time.monotonic():
                return None
            return decode_answer(found[1])
        raw = await self._client().get(key)
        return None if raw is None else decode_answer(raw)

    async def set(self, key: str, answer: CachedAnswer, ttl_s: float) -> None:
        encoded = encode_answer(answer)
        if self.type == "local":
            self._local[key] = (time.monotonic() + ttl_s, encoded)
            self._local.move_to_end(key)
            while len(self._local) > LOCAL_MAX_ENTRIES:
                self._local.popitem(last=False)
            return
        await self._client().set(key, encoded, px=max(1, int(ttl_s * 1000)))

    def _client(self) -> Redis:
        if self._redis is None:
            from redis.asyncio import Redis  # `import switchboard` loads no Redis client

            assert self._url is not None
            self._redis = Redis.from_url(self._url, password=self._password)
        return self._redis

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # ------------------------------------------------------------------ rules

    def plan(
        self, kind: str, model: str, request: Mapping[str, Any], caching: bool | None
    ) -> tuple[str, CacheControl] | None:
        """(the key, the controls) of a call the cache takes part in, else None."""
        types = {"chat": ("completion", "acompletion"), "embedding": ("embedding", "aembedding")}
        if not any(t in self.supported_call_types for t in types[kind]):
            return None
        control = control_of(request, None)
        wanted = caching if caching is not None else control.use_cache
        if wanted is False or (self.mode == "default_off" and not wanted):
            return None
        digest = cache_digest(request, model, kind, None)
        return f"{control.namespace or self.namespace}:{digest}", control


# The cache in force (`switchboard.cache = ...`); None: no caching.
current: Cache | None = None
