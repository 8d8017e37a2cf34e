"""The router: for each attempt pick a deployment from live figures, call its adapter,
record what happened; retry within the group, then fall back to other groups.

    RoutingEngine.chat/embed/stream -> Attempts(...).with_fallbacks()   (routing/attempts.py)
    each attempt: choose (route, admit) -> call -> release or record_failure

Streams are retried or fall back only before their first batch exists: once a chunk may
have reached the client, a retry would duplicate text. The rest of a stream holds its
deployment's slot until it is read or closed (routing/tracked_stream.py). A stream whose
worker died goes on at the deployment that served it (`continue_stream`, issue #15): one
attempt, no retry, no fallback, counted against its figures but refused by none of its
limits (the request was admitted there once already).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

import msgspec

from workers.deployment import Deployment
from workers.errors import GatewayTimeout, ModelNotFound, SwitchboardError
from workers.http import HttpClient
from workers.providers import create_adapter
from workers.providers.base import Adapter, ChatCall, EmbeddingCall
from workers.providers.mock import mock_of
from workers.routing import reliability
from workers.routing.attempts import (
    AttemptKind,
    Attempts,
    Call,
    Outcome,
    Scope,
    attempt_call,
    blame,
    estimate_prompt_tokens,
    request_deadline,
)
from workers.routing.checks import eligible, nothing_eligible
from workers.routing.memory_store import MemoryFigures
from workers.routing.observer import RoutingObserver, Unobserved
from workers.routing.plan import Route, RoutingPlan, plan_without_limits
from workers.routing.scope import may_reach
from workers.routing.store import AttemptResult, FiguresStore
from workers.routing.strategies import STRATEGIES, PickContext, Reason
from workers.routing.tags import tagged_indices
from workers.routing.tracked_stream import Batches, TrackedBatches, finished
from workers.routing.wildcards import is_wildcard, upstream_model
from workers.settings import RouterSettings
from workers.supervision import Supervisor
from workers.wire import ChatCompletion, ChatCompletionChunk, EmbeddingResponse

__all__ = ["Batches", "Outcome", "RoutingEngine", "Target"]

log = logging.getLogger("switchboard.routing")
T = TypeVar("T")
# Adapters made for the models wildcard groups were asked for, kept most recent first: a
# client names any model it likes, so the cache is bounded.
MAX_WILDCARD_ADAPTERS = 1024


class Target(msgspec.Struct, frozen=True):
    route: Route
    adapter: Adapter


async def _chat(
    adapter: Adapter, call: ChatCall, estimate: int
) -> tuple[ChatCompletion, AttemptResult]:
    started = time.perf_counter()
    response = await adapter.chat(call)
    return response, finished(started, response.usage, estimate)


async def _embed(
    adapter: Adapter, call: EmbeddingCall, estimate: int
) -> tuple[EmbeddingResponse, AttemptResult]:
    started = time.perf_counter()
    response = await adapter.embed(call)
    elapsed_ms = (time.perf_counter() - started) * 1000
    used = response.usage.total_tokens
    return response, AttemptResult(latency_ms_per_token=elapsed_ms, tokens_delta=used - estimate)


Opened = tuple[list[ChatCompletionChunk], Batches, float]


async def _open_stream(adapter: Adapter, call: ChatCall, estimate: int) -> tuple[Opened, Any]:
    """A stream's first batch (its attempt ends there), the rest, and when it started."""
    started = time.perf_counter()
    first, batches = await adapter.open_stream(call)
    ttft_ms = (time.perf_counter() - started) * 1000
    return (first, batches, started), AttemptResult(ttft_ms=ttft_ms)


CHAT: AttemptKind[ChatCompletion] = AttemptKind(_chat)
EMBED: AttemptKind[EmbeddingResponse] = AttemptKind(_embed)
STREAM: AttemptKind[Opened] = AttemptKind(_open_stream, is_stream=True)


def rendezvous(routes: Sequence[Route], key: str) -> Route:
    """The route with the highest hash of (key, name): the same key picks the same
    deployment on every worker, with no state, and a deployment that drops out of the
    eligible set moves only its own keys (issue #18, prompt-cache affinity)."""

    def weight(route: Route) -> bytes:
        return hashlib.blake2b(f"{key}|{route.name}".encode(), digest_size=8).digest()

    return max(routes, key=weight)


class RoutingEngine:
    def __init__(
        self,
        plan: RoutingPlan,
        http: HttpClient,
        store: FiguresStore,
        *,
        rng: random.Random | None = None,
        observer: RoutingObserver | None = None,
    ) -> None:
        self.plan = plan
        self.settings = plan.settings
        self.store = store
        self.observer: RoutingObserver = observer or Unobserved()
        self.rng = rng or random.Random()
        self.strategy_name = self.settings.routing_strategy
        self._strategy = STRATEGIES[self.strategy_name]
        self.http = http
        self.targets: dict[str, list[Target]] = {
            group: [Target(route, create_adapter(route.deployment, http)) for route in routes]
            for group, routes in plan.groups.items()
        }
        self._wildcard_adapters: OrderedDict[tuple[str, str], Adapter] = OrderedDict()
        # Releases of streams abandoned unclosed (TrackedBatches), owned until they finish.
        self.tasks = Supervisor("routing", log)

    @classmethod
    def unplanned(
        cls,
        groups: Mapping[str, Sequence[Deployment]],
        http: HttpClient,
        *,
        num_retries: int = 0,
        observer: RoutingObserver | None = None,
    ) -> RoutingEngine:
        """An engine without a config's plan: default router settings, no limits, figures
        in this process's memory (tests, single-process use)."""
        plan = plan_without_limits(groups, RouterSettings(num_retries=num_retries))
        return cls(plan, http, MemoryFigures(), observer=observer)

    @property
    def num_retries(self) -> int:
        return self.settings.num_retries or 0

    async def aclose(self) -> None:
        """Wait for the releases of abandoned streams still under way."""
        await self.tasks.aclose()

    # ------------------------------------------------------------------ public calls
    # `scope`: the model groups the caller's key may reach (None: all); fallbacks stay in it.

    async def chat(
        self, group: str, call: ChatCall, num_retries: int | None = None, *, scope: Scope = None
    ) -> tuple[ChatCompletion, Outcome]:
        served = await self.attempts(group, call, CHAT, num_retries, scope).with_fallbacks()
        return served.value, served.outcome

    async def embed(
        self,
        group: str,
        call: EmbeddingCall,
        num_retries: int | None = None,
        *,
        scope: Scope = None,
    ) -> tuple[EmbeddingResponse, Outcome]:
        served = await self.attempts(group, call, EMBED, num_retries, scope).with_fallbacks()
        return served.value, served.outcome

    async def stream(
        self, group: str, call: ChatCall, num_retries: int | None = None, *, scope: Scope = None
    ) -> tuple[list[ChatCompletionChunk], Batches, Outcome]:
        """The first batch, the rest, and the outcome. The deployment's slot is held until
        the rest is exhausted or closed (the caller must close it)."""
        attempts = self.attempts(group, call, STREAM, num_retries, scope)
        served = await attempts.with_fallbacks()
        first, batches, started = served.value
        # Released in the group that served it (a fallback's, maybe), where it was admitted.
        rest = TrackedBatches(
            self,
            served.group,
            served.route,
            batches,
            started,
            served.result,
            attempts.estimate,
            first,
        )
        return first, rest, served.outcome

    def target_labelled(self, label: str) -> tuple[str, Target] | None:
        """The (group, target) of the deployment a reply's bookkeeping names."""
        for group, targets in self.targets.items():
            for target in targets:
                if target.route.deployment.label == label:
                    return group, target
        return None

    async def continue_stream(
        self, group: str, target: Target, call: ChatCall
    ) -> tuple[list[ChatCompletionChunk], Batches, Outcome]:
        """Open the continuation of a stream at the deployment that served it: its first
        batch, the rest (holding the slot until read or closed) and the outcome."""
        route = target.route
        estimate = estimate_prompt_tokens(call)
        await self.store.count_admission(group, route.name, estimate)
        self.observer.routed(group, route.name)
        started = time.perf_counter()
        try:
            adapter = self.adapter_for(group, target, call)
            first, batches = await adapter.open_stream(
                attempt_call(call, route, True, request_deadline(call))
            )
        except SwitchboardError as exc:
            blame(exc, route.deployment)
            await self.record_failure(group, route, exc)
            raise
        except BaseException:
            await self.store.release(group, route.name, AttemptResult())
            raise
        ttft_ms = (time.perf_counter() - started) * 1000
        result = AttemptResult(ttft_ms=ttft_ms)
        rest = TrackedBatches(self, group, route, batches, started, result, estimate, first)
        return first, rest, Outcome(deployment=route.deployment, upstream_ms=ttft_ms)

    def attempts(
        self, group: str, call: Call, kind: AttemptKind[T], num_retries: int | None, scope: Scope
    ) -> Attempts[T]:
        """One request's attempts at `group` (and its fallbacks)."""
        retries = self.num_retries if num_retries is None else num_retries
        return Attempts(self, group, call, kind, retries=retries, scope=scope)

    def release_abandoned(self, stream: TrackedBatches) -> None:
        """Release the slot of a stream abandoned unclosed, on a task this engine owns."""
        self.tasks.spawn(stream.aclose(), "release abandoned stream")

    # ------------------------------------------------------------------ groups and fallbacks

    def targets_of(self, group: str) -> list[Target]:
        targets = self.targets.get(group)
        if not targets:
            raise ModelNotFound(
                f"model `{group}` is not served here; available models: "
                f"{', '.join(sorted(self.targets)) or 'none'}",
                param="model",
            )
        return targets

    def tagged(self, group: str, targets: list[Target], tags: Sequence[str]) -> list[Target]:
        """The targets a request with `tags` may use (all, without tag filtering)."""
        if not self.settings.enable_tag_filtering:
            return targets
        indices = tagged_indices(
            group,
            [t.route.tags for t in targets],
            tags,
            match_any=self.settings.tag_filtering_match_any,
        )
        return [targets[i] for i in indices]

    def adapter_for(self, group: str, target: Target, call: Call) -> Adapter:
        """The adapter for this call: a mock when it or the deployment asks for one, else the
        target's, or for a wildcard group one for the model the request named."""
        adapter = self._model_adapter(group, target, call.request.model)
        return mock_of(adapter, call) or adapter

    def _model_adapter(self, group: str, target: Target, requested: str) -> Adapter:
        deployment = target.route.deployment
        if not is_wildcard(group):
            return target.adapter
        model = upstream_model(deployment.model, group, requested)
        if model == deployment.model:
            return target.adapter
        key = (target.route.name, model)
        adapter = self._wildcard_adapters.get(key)
        if adapter is None:
            concrete = msgspec.structs.replace(deployment, model=model)
            adapter = self._wildcard_adapters[key] = create_adapter(concrete, self.http)
            if len(self._wildcard_adapters) > MAX_WILDCARD_ADAPTERS:
                self._wildcard_adapters.popitem(last=False)
        else:
            self._wildcard_adapters.move_to_end(key)
        return adapter

    def fallbacks(self, group: str, failure: SwitchboardError, scope: Scope) -> Iterator[str]:
        """The fallback groups to try, in order, after `group` failed: none once out of
        time; never a group that is not served here or that the caller's key may not reach
        (that skip is counted when the request reaches it)."""
        if isinstance(failure, GatewayTimeout):
            return
        for fallback in reliability.fallback_groups(group, failure, self.settings):
            if fallback not in self.targets:
                log.warning("fallback %s of %s: no such model group; skipped", fallback, group)
            elif not may_reach(scope, fallback):
                self.observer.fallback_skipped(group, fallback, "key_scope")
                log.info(
                    "fallback %s of %s: outside the caller's key scope; skipped", fallback, group
                )
            else:
                yield fallback

    # ------------------------------------------------------------------ deployments

    async def record_failure(self, group: str, route: Route, exc: SwitchboardError) -> bool:
        """Count a failed attempt against its deployment; whether that cooled it down."""
        allowed = reliability.allowed_fails_for(exc, self.settings)
        name = reliability.error_class(exc)
        can_cool = (
            allowed is not None
            and not self.settings.disable_cooldowns
            and not self._is_alone(group)
        )
        result = AttemptResult(
            failure_class=name if allowed is not None else None,
            allowed_fails=allowed or 0,
            cooldown_s=self.settings.cooldown_time if can_cool else 0.0,
        )
        cooled = await self.store.release(group, route.name, result)
        self.observer.failed(group, route.name, name)
        if cooled:
            self.observer.cooled_down(group, route.name)
            log.warning(
                "cooling down %s/%s for %.1fs: more than %d %s this minute",
                group,
                route.name,
                self.settings.cooldown_time,
                allowed,
                name,
            )
        return cooled

    async def choose(
        self,
        group: str,
        targets: Sequence[Target],
        estimate: int,
        is_stream: bool,
        failed: set[str],
        *,
        affinity: str | None = None,
        served_by: str | None = None,
    ) -> Target:
        """A deployment of `group` for the next attempt, admitted (its slot taken), or the
        error that says why none can take it."""
        routes = [target.route for target in targets]
        names = [route.name for route in routes]
        # One deployment: admission alone checks its cooldown and limits (one round trip).
        figures = await self.store.snapshot(group, names) if len(routes) > 1 else {}
        if figures:
            self.observer.figures_read(group, figures)
        refused: dict[str, str] = {}
        while True:
            open_routes = [route for route in routes if route.name not in refused]
            found = eligible(
                open_routes,
                figures,
                prompt_tokens=estimate,
                check_context=self.settings.enable_pre_call_checks,
                avoid=failed,
            )
            for refusal in refused.values():
                found.skipped[refusal] += 1
            if not found.routes:
                if "cooldown" in refused.values() and found.cooldown_left_s is None:
                    found.cooldown_left_s = self.settings.cooldown_time
                raise nothing_eligible(group, found, estimate)
            reason: Reason | str
            served = [r for r in found.routes if r.deployment.label == served_by]
            if served_by is not None and served:
                route, reason = served[0], "the deployment that served the conversation"
            elif affinity is not None and len(found.routes) > 1:
                route, reason = rendezvous(found.routes, affinity), "conversation affinity"
            else:
                route, reason = await self._pick(group, found.routes, figures, is_stream)
            if self._is_alone(group) and route.limits.is_unlimited:
                # Nothing can refuse it (it never cools down, it has no limits), so the
                # request need not wait for the count.
                await self.store.count_admission(group, route.name, estimate)
                admission = "ok"
            else:
                admission = await self.store.admit(group, route.name, route.limits, estimate)
            if admission == "ok":
                self.observer.routed(group, route.name)
                if log.isEnabledFor(logging.DEBUG):
                    log.debug(
                        "routed %s to %s by %s: %s; skipped %s",
                        group,
                        route.name,
                        self.strategy_name,
                        reason,
                        dict(found.skipped) or "none",
                    )
                return targets[names.index(route.name)]
            refused[route.name] = admission

    def _is_alone(self, group: str) -> bool:
        """A group's only deployment never cools down: with nowhere else to send requests,
        taking it out of rotation would only turn slow answers into certain errors."""
        return len(self.plan.groups[group]) == 1

    async def _pick(
        self, group: str, routes: list[Route], figures: Any, is_stream: bool
    ) -> tuple[Route, Reason | str]:
        if len(routes) == 1:
            return routes[0], "the only eligible deployment"
        cursor = await self.store.next_cursor(group) if self.strategy_name == "round-robin" else 0
        ctx = PickContext(
            figures=figures,
            rng=self.rng,
            is_stream=is_stream,
            cursor=cursor,
            latency_buffer=self.settings.routing_strategy_args.lowest_latency_buffer,
        )
        return self._strategy(routes, ctx)
