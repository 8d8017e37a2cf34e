"""Real Redis for tests: the server at SWITCHBOARD_TEST_REDIS_URL (default the local one),
one key namespace per test, deleted afterwards. Other suites may share the server."""

from __future__ import annotations

import os
import uuid

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

REDIS_URL = os.environ.get("SWITCHBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def new_namespace() -> str:
    return f"sbtest-{uuid.uuid4().hex[:10]}"


async def delete_namespace(redis: Redis, namespace: str) -> None:
    keys = [key async for key in redis.scan_iter(match=f"{namespace}:*", count=1000)]
    if keys:
        await redis.delete(*keys)


def unreachable_redis() -> Redis:
    """A client whose every command fails at once with a ConnectionError: its unix socket
    does not exist (a TCP port with nothing behind it can hang on a dropped SYN instead)."""
    path = f"/nonexistent-{uuid.uuid4().hex[:8]}/redis.sock"
    # No retries: redis-py would otherwise back off for seconds before giving up.
    return Redis(unix_socket_path=path, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
