"""The router: for each attempt pick a deployment from live figures, call its adapter,
record what happened; retry within the group, then fall back to other groups.

    route -> admit -> call -> release            (one attempt)
    attempts within a group: retries with backoff, honoring Retry-After
    groups: the requested one, then its fallbacks (at most max_fallbacks)

Streams are retried or fall back only before their first batch exists: once a chunk may
have reached the client, a retry would duplicate text.

A request's deadline bounds everything: once it has passed, nothing is retried and no
fallback is tried, and the failure is a GatewayTimeout (504), whatever the last attempt
raised. A fallback outside the caller's key scope is skipped (routing/scope.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator, Sequence
from typing import Any, Generic, TypeVar

import msgspec

from workers.deployment import Deployment
from workers.errors import GatewayTimeout, ModelNotFound, RequestTimeout, SwitchboardError
from workers.http import HttpClient
from workers.providers import create_adapter
from workers.providers.base import Adapter, ChatCall, EmbeddingCall
from workers.routing import reliability
from workers.routing.checks import Eligible, eligible, nothing_eligible
from workers.routing.observer import NO_DEPLOYMENT, RoutingObserver, Unobserved
from workers.routing.plan import Route, RoutingPlan
from workers.routing.scope import may_reach
from workers.routing.store import AttemptResult, FiguresStore
from workers.routing.strategies import STRATEGIES, PickContext, Reason
from workers.tokens import estimate_prompt_tokens as _estimate
from workers.wire import ChatCompletion, ChatCompletionChunk, EmbeddingResponse, Usage

log = logging.getLogger("switchboard.routing")

Batches = AsyncIterator[list[ChatCompletionChunk]]
Call = ChatCall | EmbeddingCall
T = TypeVar("T")
# An attempt that times out this close to the request's deadline timed out because of it
# (its timeout was the time left): the request is out of time, not the deployment at fault.
DEADLINE_TOLERANCE_S = 0.05
Scope = Collection[str] | None


class Outcome(msgspec.Struct, kw_only=True):
    """How a request was served (or failed): shown in response headers and metrics."""

    deployment: Deployment
    attempts: int = 1
    fallbacks: int = 0
    upstream_ms: float = 0.0


class Target(msgspec.Struct, frozen=True):
    route: Route
    adapter: Adapter


class _Tally:
    """Attempts and fallbacks of one request so far."""

    def __init__(self) -> None:
        self.attempts = 0
        self.fallbacks = 0
        self.deployment: Deployment | None = None

    def outcome(self, upstream_ms: float = 0.0) -> Outcome:
        assert self.deployment is not None
        return Outcome(
            deployment=self.deployment,
            attempts=self.attempts,
            fallbacks=self.fallbacks,
            upstream_ms=upstream_ms,
        )


class _Attempt(Generic[T]):
    """What one kind of request does in an attempt and what its result tells the figures."""

    def __init__(
        self,
        run: Callable[[Adapter, Any], Awaitable[tuple[T, AttemptResult]]],
        *,
        is_stream: bool = False,
    ) -> None:
        self.run = run
        self.is_stream = is_stream


def failed_outcome(exc: BaseException) -> Outcome | None:
    """Where a failed request got to (attempts, fallbacks, last deployment), if routed."""
    found = getattr(exc, "switchboard_outcome", None)
    return found if isinstance(found, Outcome) else None


def failed_deployment(exc: BaseException) -> Deployment | None:
    """The deployment whose attempt raised `exc`, if one did."""
    found = getattr(exc, "switchboard_deployment", None)
    return found if isinstance(found, Deployment) else None


def _blame(exc: SwitchboardError, deployment: Deployment) -> None:
    if failed_deployment(exc) is None:
        exc.switchboard_deployment = deployment  # type: ignore[attr-defined]  # read by failed_deployment


def estimate_prompt_tokens(call: Call) -> int:
    """A cheap prompt size estimate for limits and windows (the front door's caps use the
    same one: workers/tokens.py)."""
    return _estimate(call.request)


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
        self.targets: dict[str, list[Target]] = {
            group: [Target(route, create_adapter(route.deployment, http)) for route in routes]
            for group, routes in plan.groups.items()
        }

    @property
    def num_retries(self) -> int:
        return self.settings.num_retries or 0

    # ------------------------------------------------------------------ public calls

    async def chat(
        self, group: str, call: ChatCall, num_retries: int | None = None, *, scope: Scope = None
    ) -> tuple[ChatCompletion, Outcome]:
        estimate = estimate_prompt_tokens(call)

        async def run(adapter: Adapter, attempt_call: ChatCall) -> tuple[ChatCompletion, Any]:
            started = time.perf_counter()
            response = await adapter.chat(attempt_call)
            return response, _finished(started, response.usage, estimate)

        return await self._serve(group, call, num_retries, _Attempt(run), estimate, scope)

    async def embed(
        self,
        group: str,
        call: EmbeddingCall,
        num_retries: int | None = None,
        *,
        scope: Scope = None,
    ) -> tuple[EmbeddingResponse, Outcome]:
        estimate = estimate_prompt_tokens(call)

        async def run(adapter: Adapter, attempt_call: EmbeddingCall) -> tuple[Any, Any]:
            started = time.perf_counter()
            response = await adapter.embed(attempt_call)
            elapsed_ms = (time.perf_counter() - started) * 1000
            used = response.usage.total_tokens
            return response, AttemptResult(
                latency_ms_per_token=elapsed_ms, tokens_delta=used - estimate
            )

        return await self._serve(group, call, num_retries, _Attempt(run), estimate, scope)

    async def stream(
        self, group: str, call: ChatCall, num_retries: int | None = None, *, scope: Scope = None
    ) -> tuple[list[ChatCompletionChunk], Batches, Outcome]:
        """The first batch, the rest, and the outcome. The deployment's slot is held until
        the rest is exhausted or closed (the caller must close it)."""
        estimate = estimate_prompt_tokens(call)

        async def run(adapter: Adapter, attempt_call: ChatCall) -> tuple[Any, AttemptResult]:
            started = time.perf_counter()
            batches = adapter.stream(attempt_call)
            try:
                first: list[ChatCompletionChunk] = await anext(batches, [])
            except BaseException:
                await batches.aclose()  # type: ignore[attr-defined]  # an async generator
                raise
            ttft_ms = (time.perf_counter() - started) * 1000
            return (first, batches, started), AttemptResult(ttft_ms=ttft_ms)

        attempt: _Attempt[tuple[list[ChatCompletionChunk], Batches, float]] = _Attempt(
            run, is_stream=True
        )
        (first, batches, started), outcome, route, ttft = await self._serve_stream(
            group, call, num_retries, attempt, estimate, scope
        )
        rest = _TrackedBatches(self, group, route, batches, started, ttft, estimate, first)
        return first, rest, outcome

    # ------------------------------------------------------------------ groups and fallbacks

    def _targets(self, group: str) -> list[Target]:
        targets = self.targets.get(group)
        if not targets:
            raise ModelNotFound(
                f"model `{group}` is not served here; available models: "
                f"{', '.join(sorted(self.targets)) or 'none'}",
                param="model",
            )
        return targets

    async def _serve(
        self,
        group: str,
        call: Call,
        num_retries: int | None,
        attempt: _Attempt[T],
        estimate: int,
        scope: Scope,
    ) -> tuple[T, Outcome]:
        value, outcome, _route, _result = await self._with_fallbacks(
            group, call, num_retries, attempt, estimate, scope, release_on_success=True
        )
        return value, outcome

    async def _serve_stream(
        self,
        group: str,
        call: Call,
        num_retries: int | None,
        attempt: _Attempt[T],
        estimate: int,
        scope: Scope,
    ) -> tuple[T, Outcome, Route, AttemptResult]:
        return await self._with_fallbacks(
            group, call, num_retries, attempt, estimate, scope, release_on_success=False
        )

    async def _with_fallbacks(
        self,
        group: str,
        call: Call,
        num_retries: int | None,
        attempt: _Attempt[T],
        estimate: int,
        scope: Scope,
        *,
        release_on_success: bool,
    ) -> tuple[T, Outcome, Route, AttemptResult]:
        self._targets(group)  # an unknown model fails at once, without fallbacks
        tally = _Tally()
        retries = self.num_retries if num_retries is None else num_retries
        deadline = _deadline(call)
        try:
            return await self._in_group(
                group, call, retries, attempt, estimate, tally, deadline, release_on_success
            )
        except SwitchboardError as exc:
            original = exc
        is_out_of_time = isinstance(original, GatewayTimeout)
        for fallback in self._fallbacks(group, original, scope):
            if is_out_of_time or _is_past(deadline):
                break
            tally.fallbacks += 1
            self.observer.fell_back(group, fallback)
            log.info(
                "falling back from %s to %s after %s (fallback %d)",
                group,
                fallback,
                reliability.error_class(original),
                tally.fallbacks,
            )
            try:
                return await self._in_group(
                    fallback, call, retries, attempt, estimate, tally, deadline, release_on_success
                )
            except SwitchboardError as exc:
                is_out_of_time = isinstance(exc, GatewayTimeout)
                log.info("fallback %s failed too: %s", fallback, reliability.error_class(exc))
        if (is_out_of_time or _is_past(deadline)) and not isinstance(original, GatewayTimeout):
            original = _out_of_time(original)
        if tally.deployment is not None:
            original.switchboard_outcome = tally.outcome()  # type: ignore[attr-defined]  # read by failed_outcome
        raise original

    def _fallbacks(self, group: str, failure: SwitchboardError, scope: Scope) -> Iterator[str]:
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

    # ------------------------------------------------------------------ attempts in a group

    async def _in_group(
        self,
        group: str,
        call: Call,
        retries: int,
        attempt: _Attempt[T],
        estimate: int,
        tally: _Tally,
        deadline: float | None,
        release_on_success: bool,
    ) -> tuple[T, Outcome, Route, AttemptResult]:
        targets = self._targets(group)
        failed: set[str] = set()
        retry = 0
        while True:
            chosen: Target | None = None
            try:
                chosen, _found = await self._choose(
                    group, targets, estimate, attempt.is_stream, failed
                )
                tally.attempts += 1
                tally.deployment = chosen.route.deployment
                value, result, upstream_ms = await self._attempt(
                    group, chosen, call, attempt, deadline
                )
            except SwitchboardError as exc:
                if _is_past(deadline, exc):
                    raise _out_of_time(exc) from exc
                allowed = reliability.retries_for(exc, self.settings, retries)
                if retry >= allowed:
                    raise
                retry += 1
                if chosen is not None:
                    failed.add(chosen.route.name)
                has_alternative = chosen is not None and any(
                    t.route.name not in failed for t in targets
                )
                delay = reliability.retry_delay_s(
                    exc, retry, self.settings, has_alternative=has_alternative
                )
                if deadline is not None and time.monotonic() + delay >= deadline:
                    log.info("no retry of %s: a %.2fs pause would pass the deadline", group, delay)
                    raise
                self.observer.retried(group, chosen.route.name if chosen else NO_DEPLOYMENT)
                log.info(
                    "retry %d/%d of %s in %.2fs after %s",
                    retry,
                    allowed,
                    group,
                    delay,
                    reliability.error_class(exc),
                )
                await asyncio.sleep(delay)
                continue
            if release_on_success:
                await self.store.release(group, chosen.route.name, result)
            return value, tally.outcome(upstream_ms), chosen.route, result

    async def _attempt(
        self, group: str, target: Target, call: Call, attempt: _Attempt[T], deadline: float | None
    ) -> tuple[T, AttemptResult, float]:
        """One call to one deployment, with how long it took (to the first batch for a
        stream); its failure is recorded (and may cool the deployment down)."""
        route = target.route
        started = time.perf_counter()
        try:
            value, result = await attempt.run(
                target.adapter, _attempt_call(call, route, attempt.is_stream, deadline)
            )
            return value, result, (time.perf_counter() - started) * 1000
        except SwitchboardError as exc:
            _blame(exc, route.deployment)
            await self.record_failure(group, route, exc)
            raise
        except BaseException:
            await self.store.release(group, route.name, AttemptResult())
            raise

    async def record_failure(self, group: str, route: Route, exc: SwitchboardError) -> None:
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

    async def _choose(
        self,
        group: str,
        targets: Sequence[Target],
        estimate: int,
        is_stream: bool,
        failed: set[str],
    ) -> tuple[Target, Eligible]:
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
                return targets[names.index(route.name)], found
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


class _TrackedBatches:
    """The rest of a stream; when it ends or is closed (even unstarted: an async generator's
    `finally` would not run then), the deployment's slot is released with what it measured."""

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
        self._usage = _usage_of(first)
        self._failure: SwitchboardError | None = None
        self._is_released = False
        self._loop = asyncio.get_running_loop()

    def __del__(self) -> None:
        # Abandoned unclosed (a caller broke out of its loop): release the slot the way
        # asyncio finalizes an abandoned async generator, on the loop, with aclose().
        if self._is_released or self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self._loop.create_task, self.aclose())

    def __aiter__(self) -> _TrackedBatches:
        return self

    async def __anext__(self) -> list[ChatCompletionChunk]:
        try:
            batch = await anext(self._batches)
        except SwitchboardError as exc:
            _blame(exc, self._route.deployment)
            self._failure = exc
            await self.aclose()
            raise
        except StopAsyncIteration:
            await self.aclose()
            raise
        self._usage = _usage_of(batch) or self._usage
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
                result = _finished(self._started, self._usage, self._estimate)
                result = msgspec.structs.replace(result, ttft_ms=self._ttft_ms)
                await engine.store.release(group, route.name, result)


def _usage_of(batch: list[ChatCompletionChunk]) -> Usage | None:
    for chunk in reversed(batch):
        if chunk.usage is not None:
            return chunk.usage
    return None


def _finished(started: float, usage: Usage | None, estimate: int) -> AttemptResult:
    elapsed_ms = (time.perf_counter() - started) * 1000
    if usage is None:
        return AttemptResult(latency_ms_per_token=None)
    return AttemptResult(
        latency_ms_per_token=elapsed_ms / max(1, usage.completion_tokens),
        tokens_delta=usage.total_tokens - estimate,
    )


def _deadline(call: Call) -> float | None:
    return None if call.timeout_s is None else time.monotonic() + call.timeout_s


def _is_past(deadline: float | None, failure: SwitchboardError | None = None) -> bool:
    """Whether the request is out of time: its deadline passed, or an attempt timed out
    within a hair of it (its timeout was the time left, and fired a little early)."""
    if deadline is None:
        return False
    left = deadline - time.monotonic()
    return left <= 0 or (isinstance(failure, RequestTimeout) and left <= DEADLINE_TOLERANCE_S)


def _out_of_time(cause: SwitchboardError) -> GatewayTimeout:
    """The request's deadline passed while `cause` was the last word: a 504, not the
    attempt's own failure (which was most likely its timeout, cut to the time left)."""
    error = GatewayTimeout(
        "the request's deadline passed before a deployment answered",
        provider=cause.provider,
        model=cause.model,
    )
    error.__cause__ = cause
    return error


def _attempt_call(call: Call, route: Route, is_stream: bool, deadline: float | None) -> Any:
    """The call for one attempt: its timeout is the deployment's, within the request's."""
    deployment = route.deployment
    own = deployment.stream_timeout_s if is_stream else None
    own = own if own is not None else deployment.timeout_s
    remaining = None if deadline is None else max(0.001, deadline - time.monotonic())
    limits = [t for t in (own, remaining) if t is not None]
    timeout_s = min(limits) if limits else None
    if timeout_s == call.timeout_s:
        return call
    return msgspec.structs.replace(call, timeout_s=timeout_s)
