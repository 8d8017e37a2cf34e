"""Pub/sub notices: workers known gone, and mirrored tenancy entities that changed."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from redis.asyncio import Redis

from workers.redis_streams.key_names import Keys


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
