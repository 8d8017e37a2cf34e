"""The rest of a routed stream: it holds its deployment's slot until it ends or is closed,
then releases it with what it measured (or records its failure)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import msgspec

from workers.errors import SwitchboardError
from workers.routing.attempts import blame
from workers.routing.plan import Route
from workers.routing.store import AttemptResult
from workers.wire import ChatCompletionChunk, Usage

if TYPE_CHECKING:
    from workers.routing.engine import RoutingEngine

Batches = AsyncIterator[list[ChatCompletionChunk]]


class TrackedBatches:
    """The rest of a stream; when it ends or is closed (even unstarted: an async generator's
    `finally` would not run then), the deployment's slot is released with what it measured.
    One abandoned unclosed (a caller broke out of its loop) is released by a task its engine
    owns (`RoutingEngine.release_abandoned`), as asyncio finalizes an abandoned async
    generator on its loop."""

    def __init__(
        self,
        engine: RoutingEngine,
        group: str,
        route: Route,
        batches: Batches,
        started: float,
        first_result: AttemptResult,
        estimate: int,
        first: list[ChatCompletionChunk],
    ) -> None:
        self._engine = engine
        self._group = group
        self._route = route
        self._batches = batches
        self._started = started
        self._ttft_ms = first_result.ttft_ms
        self._estimate = estimate
        self._usage = usage_of(first)
        self._failure: SwitchboardError | None = None
        self._is_released = False
        self._loop = asyncio.get_running_loop()

    def __del__(self) -> None:
        if self._is_released or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._engine.release_abandoned, self)

    def __aiter__(self) -> TrackedBatches:
        return self

    async def __anext__(self) -> list[ChatCompletionChunk]:
        try:
            batch = await anext(self._batches)
        except SwitchboardError as exc:
            blame(exc, self._route.deployment)
            self._failure = exc
            await self.aclose()
            raise
        except StopAsyncIteration:
            await self.aclose()
            raise
        self._usage = usage_of(batch) or self._usage
        return batch

    async def aclose(self) -> None:
        if self._is_released:
            return
        self._is_released = True
        try:
            await self._batches.aclose()  # type: ignore[attr-defined]  # an async generator
        finally:
            engine, group, route = self._engine, self._group, self._route
            if self._failure is not None:
                await engine.record_failure(group, route, self._failure)
            else:
                result = finished(self._started, self._usage, self._estimate)
                result = msgspec.structs.replace(result, ttft_ms=self._ttft_ms)
                await engine.store.release(group, route.name, result)


def usage_of(batch: list[ChatCompletionChunk]) -> Usage | None:
    for chunk in reversed(batch):
        if chunk.usage is not None:
            return chunk.usage
    return None


def finished(started: float, usage: Usage | None, estimate: int) -> AttemptResult:
    """What a finished chat attempt tells the figures: latency per output token and how far
    the prompt estimate was off."""
    elapsed_ms = (time.perf_counter() - started) * 1000
    if usage is None:
        return AttemptResult(latency_ms_per_token=None)
    return AttemptResult(
        latency_ms_per_token=elapsed_ms / max(1, usage.completion_tokens),
        tokens_delta=usage.total_tokens - estimate,
    )
