"""Coalesce the pipelined writes of concurrent requests into one Redis round trip.

Every round trip costs a fixed ~70-90 us of redis-py CPU on each side plus two context
switches, whatever it carries (benchmarks/, docs/performance.md). Writes queued during one
event-loop turn go out together on the next: under load dozens of requests share a round
trip; a lone request waits one loop turn, microseconds.

Writes nobody waits for (a routing count whose answer can only be "ok") can also ride the
next batch someone else starts, within a bound: at one request at a time that is the
request's own final record, one round trip (and one Redis and one worker wake-up) fewer.
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
        # Writes that ride the next batch, or go out alone when their bound runs out.
        self._riders: list[tuple[Build, asyncio.Future[list[Any]]]] = []
        self._riders_due: asyncio.TimerHandle | None = None
        self._unsent: set[asyncio.Future[list[Any]]] = set()

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
        self._open_batch()
        if self._riders:
            self._board_riders()  # before `build`: Redis sees them in the order queued
        done: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._add(build, done)
        return done

    def queue_rider(self, build: Build, within_s: float) -> asyncio.Future[list[Any]]:
        """Queue `build`'s commands to go out with the next batch anyone queues, or alone
        `within_s` from the first waiting rider: for writes whose answer nobody waits on, so
        that they cost no round trip of their own. Order is kept: a rider reaches Redis
        before anything queued after it."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()
        if self._pipe is not None:  # a batch is forming this turn: board it now
            self._add(build, done)
            return done
        self._riders.append((build, done))
        self._unsent.add(done)
        if self._riders_due is None:
            self._riders_due = loop.call_later(within_s, self._send_riders)
        return done

    def is_unsent(self, done: asyncio.Future[list[Any]]) -> bool:
        """Whether the write behind `done` has not left yet: anything queued now reaches
        Redis after it, in the same batch."""
        return done in self._unsent

    def _send_riders(self) -> None:
        if not self._riders:
            return
        self._open_batch()
        self._board_riders()

    def _open_batch(self) -> None:
        """This turn's pipeline, started (and its flush scheduled) if none is forming."""
        if self._pipe is None:
            self._pipe = self.redis.pipeline(transaction=False)
            asyncio.get_running_loop().call_soon(self._flush)

    def _board_riders(self) -> None:
        riders, self._riders = self._riders, []
        if self._riders_due is not None:
            self._riders_due.cancel()
            self._riders_due = None
        for build, done in riders:
            self._add(build, done)

    def _add(self, build: Build, done: asyncio.Future[list[Any]]) -> None:
        assert self._pipe is not None
        start = self._queued
        self._queued += build(self._pipe)
        self._waiters.append((start, self._queued, done))
        self._unsent.add(done)

    def _flush(self) -> None:
        pipe, waiters = self._pipe, self._waiters
        self._pipe, self._waiters, self._queued = None, [], 0
        self._unsent = set()
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
        self._send_riders()
        self._flush()
        if self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)


def failure_of(done: asyncio.Future[Any]) -> BaseException | None:
    """What went wrong with a queued write, once its future is done: the batch's own error
    (the connection), else the first of its commands' errors; None for success, and for a
    write cancelled at shutdown. A future that is not a batch's (a retry's plain answer) is
    judged by its exception alone."""
    if done.cancelled():
        return None
    error = done.exception()
    if error is None and isinstance(done.result(), list):
        error = next((reply for reply in done.result() if isinstance(reply, Exception)), None)
    return error
