"""Coalesce the pipelined writes of concurrent requests into one Redis round trip.

Every round trip costs a fixed ~70-90 us of redis-py CPU on each side plus two context
switches, whatever it carries (benchmarks/, docs/performance.md). Writes queued during one
event-loop turn go out together on the next: under load dozens of requests share a round
trip; a lone request waits one loop turn, microseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

# Queues commands on the pipeline and returns how many it queued.
Build = Callable[[Pipeline], int]
# (first command, end, where its replies go)
Waiter = tuple[int, int, "asyncio.Future[list[Any]]"]


class WriteBatcher:
    """One shared pipeline per loop turn; each caller gets only its own commands' replies."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._pipe: Pipeline | None = None
        self._queued = 0
        self._waiters: list[Waiter] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def write(self, build: Build) -> list[Any]:
        """Queue `build`'s commands; their replies, in order, once the round trip is done.

        Like `execute(raise_on_error=False)`, a command's error is returned in its place; an
        error of the connection itself is raised to every caller in the batch."""
        return await self.queue(build)

    def queue(self, build: Build) -> asyncio.Future[list[Any]]:
        """Queue `build`'s commands now, in this loop turn; the future has their replies.

        For writes whose caller may not wait for them: they go out with this turn's batch, in
        the order they were queued. The caller must consume the future (await it or add a
        done-callback that reads its exception), or a failed batch is logged as an exception
        never retrieved."""
        loop = asyncio.get_running_loop()
        if self._pipe is None:
            self._pipe = self.redis.pipeline(transaction=False)
            loop.call_soon(self._flush)
        start = self._queued
        self._queued += build(self._pipe)
        done: asyncio.Future[list[Any]] = loop.create_future()
        self._waiters.append((start, self._queued, done))
        return done

    def _flush(self) -> None:
        pipe, waiters = self._pipe, self._waiters
        self._pipe, self._waiters, self._queued = None, [], 0
        if pipe is None:
            return
        # Owned here so that a writer's cancellation (shutdown) never cuts a shared batch.
        task = asyncio.create_task(self._execute(pipe, waiters))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _execute(self, pipe: Pipeline, waiters: list[Waiter]) -> None:
        try:
            results: list[Any] = await pipe.execute(raise_on_error=False)
        except asyncio.CancelledError:
            for _start, _end, done in waiters:
                done.cancel()
            raise
        except Exception as exc:  # the connection failed: every writer in the batch learns it
            for _start, _end, done in waiters:
                if not done.done():
                    done.set_exception(exc)
            return
        for start, end, done in waiters:
            if not done.done():  # else its writer was cancelled meanwhile
                done.set_result(results[start:end])

    async def aclose(self) -> None:
        """Send what is queued and let batches already sent finish (their writers may be
        gone)."""
        self._flush()
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
