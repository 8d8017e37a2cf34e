"""The live routing figures of a cluster, as the scheduler reads them: public and read-only.

    figures = await read_figures(redis, Keys(namespace), {"gpt-4o": ["gpt-4o[0]", "gpt-4o[1]"]})
    figures.get("gpt-4o", "gpt-4o[0]").in_flight

One script call per model group, all pipelined into one round trip. /metrics exports these
numbers, so what Prometheus scrapes is what the scheduler decided from.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from workers.routing import scripts

if TYPE_CHECKING:
    # Only the types: the SDK reads figures from memory, and loads no Redis client.
    from redis.asyncio import Redis

    from workers.redis_streams import Keys, RoutingKeys


class DeploymentFigures(msgspec.Struct, frozen=True, kw_only=True):
    """One deployment's figures, summed over every live worker."""

    in_flight: int = 0
    # Seconds until the deployment is back in rotation; 0 when it is not cooling down.
    cooldown_s: float = 0.0
    # Moving averages; None until a request finished there (within routing_strategy_args.ttl).
    latency_ms_per_token: float | None = None
    ttft_ms: float | None = None
    # Requests and tokens taken in the current minute (UTC clock minute).
    rpm_used: int = 0
    tpm_used: int = 0
    # Failed attempts in the current minute, every error class together.
    minute_failures: int = 0

    @property
    def is_cooling_down(self) -> bool:
        return self.cooldown_s > 0


NO_FIGURES = DeploymentFigures()


class ClusterFigures(msgspec.Struct, frozen=True):
    """Model group -> deployment name -> figures."""

    groups: dict[str, dict[str, DeploymentFigures]]

    def get(self, group: str, deployment: str) -> DeploymentFigures:
        return self.groups.get(group, {}).get(deployment, NO_FIGURES)


def current_minute(now_s: float) -> int:
    return int(now_s // 60)


def script_keys(keys: RoutingKeys, now_s: float) -> list[str]:
    """The KEYS every routing script gets, in scripts.py's order."""
    return [
        keys.owners,
        keys.inflight,
        keys.stats,
        keys.usage(current_minute(now_s)),
        keys.cooldowns,
    ]


def parse_snapshot(names: Sequence[str], raw: Sequence[Any]) -> dict[str, DeploymentFigures]:
    values = [v.decode() if isinstance(v, bytes) else str(v) for v in raw]
    found = {}
    for i, name in enumerate(names):
        in_flight, cooldown_ms, latency, ttft, rpm, tpm, failures = values[7 * i : 7 * i + 7]
        found[name] = DeploymentFigures(
            in_flight=max(0, int(in_flight)),
            cooldown_s=float(cooldown_ms) / 1000,
            latency_ms_per_token=float(latency) if latency else None,
            ttft_ms=float(ttft) if ttft else None,
            rpm_used=int(rpm),
            tpm_used=max(0, int(tpm)),
            minute_failures=int(failures),
        )
    return found


async def read_figures(
    redis: Redis, keys: Keys, groups: Mapping[str, Sequence[str]]
) -> ClusterFigures:
    """Every listed deployment's figures, in one round trip."""
    now_s = time.time()
    order = [(group, list(names)) for group, names in groups.items() if names]
    results: list[Any] = []
    # The context manager resets the pipeline (freeing its connection) even when a caller's
    # refresh is cancelled. EVAL rather than a registered script's EVALSHA: it never meets
    # NOSCRIPT, and a cluster pipeline takes it in place (this runs a few times a second, off
    # the request path, so sending the script's text costs nothing that matters).
    async with redis.pipeline(transaction=False) as pipe:
        for group, names in order:
            group_keys = script_keys(keys.routing(group), now_s)
            pipe.eval(scripts.SNAPSHOT, len(group_keys), *group_keys, int(now_s * 1000), *names)
        if order:
            results = await pipe.execute()
    return ClusterFigures(
        {
            group: parse_snapshot(names, raw)
            for (group, names), raw in zip(order, results, strict=True)
        }
    )
