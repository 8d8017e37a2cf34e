"""Runs one request against a model group: pick a deployment, call its adapter, retry.

This is the seam the scheduler plugs into: `choose` decides which deployment serves an
attempt. Streams are retried only before their first batch exists, since after that a
retry would duplicate text the client may already hold.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import msgspec

from workers.deployment import Deployment
from workers.errors import ModelNotFound, SwitchboardError
from workers.http import HttpClient
from workers.providers import create_adapter
from workers.providers.base import Adapter, ChatCall, EmbeddingCall
from workers.retry import backoff_s
from workers.wire import ChatCompletion, ChatCompletionChunk, EmbeddingResponse

Batches = AsyncIterator[list[ChatCompletionChunk]]
T = TypeVar("T")


class Outcome(msgspec.Struct, kw_only=True):
    """How a request was served: shown in response headers and metrics."""

    deployment: Deployment
    attempts: int = 1
    fallbacks: int = 0
    upstream_ms: float = 0.0


class Dispatcher:
    def __init__(
        self,
        groups: Mapping[str, Sequence[Deployment]],
        http: HttpClient,
        *,
        num_retries: int = 0,
    ) -> None:
        self.groups = {name: list(deployments) for name, deployments in groups.items()}
        self.num_retries = num_retries
        self._adapters: dict[str, list[tuple[Deployment, Adapter]]] = {
            name: [(d, create_adapter(d, http)) for d in deployments]
            for name, deployments in self.groups.items()
        }

    def has_group(self, name: str) -> bool:
        return name in self._adapters

    def model_groups(self) -> list[str]:
        return list(self._adapters)

    def choose(self, group: str, call: ChatCall | EmbeddingCall) -> tuple[Deployment, Adapter]:
        candidates = self._adapters.get(group)
        if not candidates:
            raise ModelNotFound(
                f"model `{group}` is not served here; available models: "
                f"{', '.join(sorted(self._adapters)) or 'none'}",
                param="model",
            )
        if len(candidates) == 1:
            return candidates[0]
        return random.choice(candidates)

    def _retries(self, num_retries: int | None) -> int:
        return self.num_retries if num_retries is None else num_retries

    async def _call(
        self,
        group: str,
        call: ChatCall | EmbeddingCall,
        num_retries: int | None,
        run: Callable[[Adapter], Awaitable[T]],
    ) -> tuple[T, Outcome]:
        attempt = 0
        while True:
            deployment, adapter = self.choose(group, call)
            started = time.perf_counter()
            try:
                result = await run(adapter)
            except SwitchboardError as exc:
                if not exc.retryable or attempt >= self._retries(num_retries):
                    raise
                attempt += 1
                await _pause(attempt, exc)
                continue
            upstream_ms = (time.perf_counter() - started) * 1000
            return result, Outcome(
                deployment=deployment, attempts=attempt + 1, upstream_ms=upstream_ms
            )

    async def chat(
        self, group: str, call: ChatCall, num_retries: int | None = None
    ) -> tuple[ChatCompletion, Outcome]:
        return await self._call(group, call, num_retries, lambda adapter: adapter.chat(call))

    async def embed(
        self, group: str, call: EmbeddingCall, num_retries: int | None = None
    ) -> tuple[EmbeddingResponse, Outcome]:
        return await self._call(group, call, num_retries, lambda adapter: adapter.embed(call))

    async def stream(
        self, group: str, call: ChatCall, num_retries: int | None = None
    ) -> tuple[list[ChatCompletionChunk], Batches, Outcome]:
        attempt = 0
        while True:
            deployment, adapter = self.choose(group, call)
            started = time.perf_counter()
            batches = adapter.stream(call)
            try:
                first: list[ChatCompletionChunk] = await anext(batches, [])
            except SwitchboardError as exc:
                await batches.aclose()  # type: ignore[attr-defined]  # an async generator
                if not exc.retryable or attempt >= self._retries(num_retries):
                    raise
                attempt += 1
                await _pause(attempt, exc)
                continue
            except BaseException:
                await batches.aclose()  # type: ignore[attr-defined]  # an async generator
                raise
            upstream_ms = (time.perf_counter() - started) * 1000
            outcome = Outcome(deployment=deployment, attempts=attempt + 1, upstream_ms=upstream_ms)
            return first, batches, outcome


async def _pause(attempt: int, exc: SwitchboardError) -> None:
    await asyncio.sleep(backoff_s(attempt - 1, exc.retry_after_s))
