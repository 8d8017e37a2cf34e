"""Console sessions (issue #21; broker/console/sessions.py): one string each, expiring."""

from __future__ import annotations

from redis.asyncio import Redis

from workers.redis_streams.key_names import Keys


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
