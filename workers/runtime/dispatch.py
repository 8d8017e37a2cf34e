"""Runs one request against a model group through the router (workers/routing/): the seam
between the worker runtime and routing. Without a plan it routes with default settings and
in-process figures (tests, single-process use)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence

from workers.deployment import Deployment
from workers.http import HttpClient
from workers.providers.base import ChatCall, EmbeddingCall
from workers.routing.engine import Outcome, RoutingEngine, failed_outcome
from workers.routing.memory_store import MemoryFigures
from workers.routing.observer import RoutingObserver
from workers.routing.plan import RoutingPlan, plan_without_limits
from workers.routing.store import FiguresStore
from workers.settings import RouterSettings
from workers.wire import ChatCompletion, ChatCompletionChunk, EmbeddingResponse

__all__ = ["Batches", "Dispatcher", "Outcome", "failed_outcome"]

Batches = AsyncIterator[list[ChatCompletionChunk]]


class Dispatcher:
    def __init__(
        self,
        groups: Mapping[str, Sequence[Deployment]],
        http: HttpClient,
        *,
        num_retries: int = 0,
        plan: RoutingPlan | None = None,
        figures: FiguresStore | None = None,
        observer: RoutingObserver | None = None,
    ) -> None:
        if plan is None:
            plan = plan_without_limits(groups, RouterSettings(num_retries=num_retries))
        self.plan = plan
        self.engine = RoutingEngine(plan, http, figures or MemoryFigures(), observer=observer)

    def has_group(self, name: str) -> bool:
        return name in self.engine.targets

    def model_groups(self) -> list[str]:
        return list(self.engine.targets)

    # `scope`: the model groups the caller's key may reach (None: all); fallbacks stay in it.

    async def chat(
        self,
        group: str,
        call: ChatCall,
        num_retries: int | None = None,
        *,
        scope: Collection[str] | None = None,
    ) -> tuple[ChatCompletion, Outcome]:
        return await self.engine.chat(group, call, num_retries, scope=scope)

    async def embed(
        self,
        group: str,
        call: EmbeddingCall,
        num_retries: int | None = None,
        *,
        scope: Collection[str] | None = None,
    ) -> tuple[EmbeddingResponse, Outcome]:
        return await self.engine.embed(group, call, num_retries, scope=scope)

    async def stream(
        self,
        group: str,
        call: ChatCall,
        num_retries: int | None = None,
        *,
        scope: Collection[str] | None = None,
    ) -> tuple[list[ChatCompletionChunk], Batches, Outcome]:
        return await self.engine.stream(group, call, num_retries, scope=scope)
