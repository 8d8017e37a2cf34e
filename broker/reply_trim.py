"""Replies a front door has relayed whole, let go early: their reply streams are set to expire
`delivered_reply_ttl_s` after delivery instead of `reply_ttl_s` (issue #22's memory target).

A reply stays in Redis for two readers: a front door that is still relaying it, and a client
that reconnects to resume it. Once the last record went to the client, only a reconnect in the
next moments can still want it, so keeping minutes of answered traffic is memory spent on
nobody. Requests that ended any other way (client gone, timeout, the front door killed) keep
the full `reply_ttl_s`: those are the ones a resume needs.

The shortening is off the request path: ids are collected and sent as one pipelined EXPIRE
... LT per flush, a few times a second (on Redis 6.2, which lacks LT, one script call per id
that compares the TTL itself).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from workers import redis_streams
from workers.redis_streams import Keys

log = logging.getLogger("switchboard.frontdoor")

FLUSH_INTERVAL_S = 0.25
# A flush's size: bounded so that one pipeline never holds the connection for long.
MAX_BATCH = 2_000
# Ids kept while Redis is unreachable; past this the oldest are left to reply_ttl_s.
MAX_PENDING = 100_000


class DeliveredReplies:
    """Collects the ids of delivered replies and shortens their TTL in batches."""

    def __init__(self, redis: Callable[[], Redis], keys: Keys, ttl_s: int) -> None:
        self.redis = redis  # the front door's current client (tests swap it)
        self.keys = keys
        self.ttl_s = ttl_s
        self.pending: list[str] = []
        # False once Redis refused EXPIRE's LT option (6.2): a script does it from then on.
        self.has_expire_lt = True

    @property
    def is_enabled(self) -> bool:
        return self.ttl_s > 0

    def delivered(self, request_id: str) -> None:
        if self.is_enabled and len(self.pending) < MAX_PENDING:
            self.pending.append(request_id)

    async def run(self) -> None:
        """The supervised loop: flush what has been delivered, a few times a second."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            await self.flush()

    async def flush(self) -> None:
        while self.pending:
            batch = self.pending[:MAX_BATCH]
            try:
                self.has_expire_lt = await redis_streams.shorten_replies(
                    self.redis(), self.keys, batch, self.ttl_s, has_expire_lt=self.has_expire_lt
                )
            except ResponseError as exc:
                # Refused, not lost: the same batch would be refused again at every flush
                # (a loop that cost a quarter of the front door's CPU), so it is let go.
                log.warning("Redis refused to shorten %d delivered replies: %s", len(batch), exc)
            except RedisError as exc:
                # They expire at reply_ttl_s anyway; try again at the next flush.
                log.warning("could not shorten %d delivered replies: %s", len(batch), exc)
                return
            del self.pending[: len(batch)]
