"""Redis clients from a URL: one Redis, or a Redis Cluster when the scheme says so.

    redis://host:6379/0                 one server (or a proxy in front of many)
    redis+cluster://host:7000           a Redis Cluster; any node serves as the seed
    rediss+cluster://host:7000          the same over TLS

Key names need nothing more for a cluster: workers/redis_streams/ hash-tags them so that a
request's keys share a slot, and every lane shares one, so no command crosses slots.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
HEALTH_CHECK_INTERVAL_S = 30


def cluster_seed_url(url: str) -> str | None:
    """The plain redis:// URL of the seed node when `url` names a cluster, else None."""
    scheme, sep, rest = url.partition("://")
    plain = CLUSTER_SCHEMES.get(scheme.lower())
    return f"{plain}{sep}{rest}" if plain and sep else None


def connect(url: str, *, max_connections: int, pool_timeout_s: float | None = None) -> Redis:
    """A client whose pool holds up to `max_connections` (per node, for a cluster).

    A full pool makes a caller wait up to `pool_timeout_s` (None: as long as it takes)
    rather than fail, so a burst of requests queues for connections instead of erroring.
    """
    seed = cluster_seed_url(url)
    if seed is not None:
        cluster = ClusterClient.from_url(
            seed,
            max_connections=max_connections,
            health_check_interval=HEALTH_CHECK_INTERVAL_S,
        )
        # RedisCluster offers the commands Switchboard uses with Redis' signatures, but is
        # no subclass of Redis; callers are typed against Redis.
        return cast(Redis, cluster)
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=pool_timeout_s,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes its sockets


class ClusterClient(RedisCluster):
    """RedisCluster plus classic pub/sub, which redis-py's asyncio cluster client lacks.

    Classic PUBLISH is broadcast over the cluster bus to every node, so a subscription on
    any one node (the seed) hears every channel, whichever node the publisher used."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        host, port = kwargs.get("host", "localhost"), kwargs.get("port", 6379)
        options = {k: kwargs[k] for k in ("username", "password", "ssl") if k in kwargs}
        self.script_sources: dict[str, Any] = {}
        # One plain connection pool to the seed node, for classic pub/sub.
        self.seed = Redis(host=host, port=port, **options)

    def pubsub(self, **kwargs: Any) -> PubSub:
        return self.seed.pubsub(**kwargs)

    async def publish(self, channel: Any, message: Any) -> int:
        return int(await self.seed.publish(channel, message))

    def register_script(self, script: Any) -> Any:
        # redis-py types the async register_script's self as Redis; it works on a cluster.
        registered: AsyncScript = super().register_script(script)  # type: ignore[misc]
        self.script_sources[registered.sha] = registered.script
        return registered

    async def evalsha_loading(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        """EVALSHA, loading a registered script into the cluster first if a node lacks it."""
        try:
            return await self.evalsha(sha, numkeys, *keys_and_args)  # type: ignore[misc]
        except NoScriptError:
            await self.script_load(self.script_sources[sha])
            return await self.evalsha(sha, numkeys, *keys_and_args)  # type: ignore[misc]

    def pipeline(
        self, transaction: Any | None = None, shard_hint: Any | None = None
    ) -> ClusterPipeline:
        # redis-py's ClusterPipeline declares an attribute abstract that it never sets;
        # RedisCluster.pipeline() builds it exactly like this.
        return PublishingClusterPipeline(self, transaction)  # type: ignore[abstract]

    async def aclose(self) -> None:
        await self.seed.aclose()
        await super().aclose()


class PublishingClusterPipeline(ClusterPipeline):
    """A cluster pipeline that also takes PUBLISH and EVALSHA, which redis-py refuses in one.
    An EVALSHA of a script registered on the client goes into the pipeline as EVAL. A PUBLISH
    (or an EVALSHA of an unknown script) runs through the cluster client right after the
    pipeline, in their order; each reply takes its command's place in the results."""

    def __init__(self, client: ClusterClient, transaction: bool | None = None) -> None:
        super().__init__(client, transaction)
        self.client = client
        self._deferred: list[tuple[int, Callable[[], Awaitable[Any]]]] = []

    def _defer(self, run: Callable[[], Awaitable[Any]]) -> Any:
        self._deferred.append((len(self) + len(self._deferred), run))
        return self

    def publish(self, channel: Any, message: Any, **kwargs: Any) -> Any:
        return self._defer(lambda: self.client.publish(channel, message))

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        # As EVAL, which a cluster pipeline takes in place: deferred EVALSHAs would run one
        # round trip each, after the batch, out of their order with its other commands.
        source = self.client.script_sources.get(sha)
        if source is not None:
            return self.eval(source, numkeys, *keys_and_args)
        return self._defer(lambda: self.client.evalsha_loading(sha, numkeys, *keys_and_args))

    async def execute(
        self, raise_on_error: bool = True, allow_redirections: bool = True
    ) -> list[Any]:
        deferred, self._deferred = self._deferred, []
        results = await super().execute(raise_on_error, allow_redirections) if len(self) else []
        for position, run in deferred:
            try:
                result = await run()
            except RedisError as exc:
                if raise_on_error:
                    raise
                result = exc
            results.insert(position, result)
        return results
