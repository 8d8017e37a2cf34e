"""One request's attempts: the group it asked for, its call, the retries it may take, its
deadline and its tally so far.

    with_fallbacks(): in_group(the requested group), then in_group(each fallback)
    in_group(group):  attempt after attempt, with backoff, honoring Retry-After
    attempt:          route -> admit -> call -> (release, or record the failure)

A request's deadline bounds everything: once it has passed, nothing is retried and no
fallback is tried, and the failure is a GatewayTimeout (504), whatever the last attempt
raised. A fallback outside the caller's key scope is skipped (routing/scope.py). What a
failed request got to (attempts, fallbacks, last deployment) goes on its error's `outcome`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import msgspec

from workers.deployment import Deployment
from workers.envelopes import Attempt
from workers.errors import (
    GatewayTimeout,
    InvalidRequest,
    RequestTimeout,
    ServiceUnavailable,
    SwitchboardError,
)
from workers.providers.base import PIN_REASONING, Adapter, ChatCall, EmbeddingCall
from workers.routing import reliability
from workers.routing.observer import NO_DEPLOYMENT
from workers.routing.plan import Route
from workers.routing.store import AttemptResult
from workers.tokens import estimate_prompt_tokens as _estimate

if TYPE_CHECKING:
    from workers.routing.engine import RoutingEngine, Target

log = logging.getLogger("switchboard.routing")

Call = ChatCall | EmbeddingCall
Scope = Collection[str] | None
T = TypeVar("T")
# An attempt that times out this close to the request's deadline timed out because of it
# (its timeout was the time left): the request is out of time, not the deployment at fault.
DEADLINE_TOLERANCE_S = 0.05
# The code of routing's own refusal when no deployment may take a request (checks.py).
NOTHING_ELIGIBLE = "no_deployments_available"
# A pinned call (a Responses follow-up: `Pin`) waits for its deployment: it asks again at
# least this often, and gives up when less than PINNED_MIN_WAIT_S of its deadline is left
# (so that its own error, not the deadline's bare 504, reaches the client).
PINNED_POLL_S = 0.5
PINNED_MIN_WAIT_S = 0.3


class Outcome(msgspec.Struct, kw_only=True):
    """How a request was served (or failed): shown in response headers and metrics."""

    deployment: Deployment
    attempts: int = 1
    fallbacks: int = 0
    upstream_ms: float = 0.0
    # Each try, in order: the request inspector's list (issue #21).
    tried: list[Attempt] = []


class AttemptKind(Generic[T]):
    """What one kind of request does in an attempt (`run(adapter, call, prompt estimate)`),
    and whether it is a stream: a stream keeps its deployment's slot after its first batch,
    until the rest is read (workers/routing/tracked_stream.py)."""

    def __init__(
        self,
        run: Callable[[Adapter, Any, int], Awaitable[tuple[T, AttemptResult]]],
        *,
        is_stream: bool = False,
    ) -> None:
        self.run = run
        self.is_stream = is_stream


class Served(Generic[T]):
    """What answered: the value, how (outcome), and the group and route that served it."""

    __slots__ = ("value", "outcome", "group", "route", "result")

    def __init__(
        self, value: T, outcome: Outcome, group: str, route: Route, result: AttemptResult
    ) -> None:
        self.value = value
        self.outcome = outcome
        self.group = group
        self.route = route
        self.result = result


def estimate_prompt_tokens(call: Call) -> int:
    """A cheap prompt size estimate for limits and windows (the front door's caps use the
    same one: workers/tokens.py)."""
    return _estimate(call.request)


def blame(exc: SwitchboardError, deployment: Deployment) -> None:
    """Name the deployment whose attempt raised `exc` (the first to raise it)."""
    if exc.deployment is None:
        exc.deployment = deployment


class Attempts(Generic[T]):
    """One request's attempts at `group` and its fallbacks."""

    def __init__(
        self,
        engine: RoutingEngine,
        group: str,
        call: Call,
        kind: AttemptKind[T],
        *,
        retries: int,
        scope: Scope,
    ) -> None:
        self.engine = engine
        self.group = group
        self.call = call
        self.kind = kind
        self.retries = retries
        self.scope = scope
        self.estimate = estimate_prompt_tokens(call)
        self.deadline = request_deadline(call)
        # The one deployment the call must go to (None: any), as the group asked for has it.
        self.pinned = _pinned_to(call)
        # The tally so far.
        self.attempts = 0
        self.fallbacks = 0
        self.deployment: Deployment | None = None
        self.tried: list[Attempt] = []

    def outcome(self, upstream_ms: float = 0.0) -> Outcome:
        assert self.deployment is not None
        return Outcome(
            deployment=self.deployment,
            attempts=self.attempts,
            fallbacks=self.fallbacks,
            upstream_ms=upstream_ms,
            tried=list(self.tried),
        )

    def is_out_of_time(self, failure: SwitchboardError | None = None) -> bool:
        """Whether the request is out of time: its deadline passed, or an attempt timed out
        within a hair of it (its timeout was the time left, and fired a little early)."""
        if self.deadline is None:
            return False
        left = self.deadline - time.monotonic()
        return left <= 0 or (isinstance(failure, RequestTimeout) and left <= DEADLINE_TOLERANCE_S)

    async def with_fallbacks(self) -> Served[T]:
        """Serve from the requested group, then from its fallbacks in order; the requested
        group's failure is the one raised if none serves."""
        engine = self.engine
        engine.targets_of(self.group)  # an unknown model fails at once, without fallbacks
        try:
            return await self.in_group(self.group)
        except SwitchboardError as exc:
            if self.pinned is not None:
                raise  # only the pinned deployment holds what the call refers to
            original = exc
        is_out_of_time = isinstance(original, GatewayTimeout)
        for fallback in engine.fallbacks(self.group, original, self.scope):
            if is_out_of_time or self.is_out_of_time():
                break
            self.fallbacks += 1
            engine.observer.fell_back(self.group, fallback)
            log.info(
                "falling back from %s to %s after %s (fallback %d)",
                self.group,
                fallback,
                reliability.error_class(original),
                self.fallbacks,
            )
            try:
                return await self.in_group(fallback)
            except SwitchboardError as exc:
                is_out_of_time = isinstance(exc, GatewayTimeout)
                log.info("fallback %s failed too: %s", fallback, reliability.error_class(exc))
        if (is_out_of_time or self.is_out_of_time()) and not isinstance(original, GatewayTimeout):
            original = out_of_time(original)
        if self.deployment is not None:
            original.outcome = self.outcome()
        raise original

    async def in_group(self, group: str) -> Served[T]:
        """Attempt after attempt at `group`'s deployments, avoiding those that failed,
        until one answers or the retries (by error class), or the deadline, run out."""
        engine = self.engine
        targets = self._targets(group)
        pinned = self.pinned
        failed: set[str] = set()
        retry = 0
        is_waiting = False  # for a pinned deployment to become eligible
        while True:
            chosen: Target | None = None
            reason = "retry" if retry else ("fallback" if group != self.group else "")
            try:
                chosen = await engine.choose(
                    group,
                    targets,
                    self.estimate,
                    self.kind.is_stream,
                    failed,
                    affinity=getattr(self.call, "affinity", None),
                    served_by=getattr(self.call, "served_by", None),
                )
                self.attempts += 1
                self.deployment = chosen.route.deployment
                value, result, upstream_ms = await self._attempt(group, chosen, reason)
            except SwitchboardError as exc:
                if chosen is None and pinned is not None:
                    await self._wait_for_pinned(group, pinned, reason, exc, is_waiting)
                    is_waiting = True
                    continue
                if chosen is None:  # nothing could take it: cooling down, or at its limits
                    self._note(group, None, reason, exc)
                if self.is_out_of_time(exc):
                    raise out_of_time(exc) from exc
                allowed = reliability.retries_for(exc, engine.settings, self.retries)
                if retry >= allowed:
                    raise
                retry += 1
                if chosen is not None:
                    failed.add(chosen.route.name)
                has_alternative = chosen is not None and any(
                    t.route.name not in failed for t in targets
                )
                delay = reliability.retry_delay_s(
                    exc, retry, engine.settings, has_alternative=has_alternative
                )
                if self.deadline is not None and time.monotonic() + delay >= self.deadline:
                    log.info("no retry of %s: a %.2fs pause would pass the deadline", group, delay)
                    raise
                engine.observer.retried(group, chosen.route.name if chosen else NO_DEPLOYMENT)
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
            if not self.kind.is_stream:
                await engine.store.release(group, chosen.route.name, result)
            return Served(value, self.outcome(upstream_ms), group, chosen.route, result)

    def _targets(self, group: str) -> list[Target]:
        """The deployments of `group` the call may go to: the pinned one only, or those its
        routing tags allow. A translated follow-up sent to a group without its parent's
        deployment is the client's choice of another model: it is not pinned there."""
        engine = self.engine
        targets = engine.targets_of(group)
        if self.pinned is None:
            return engine.tagged(group, targets, self.call.tags)
        kept = [t for t in targets if t.route.deployment.label == self.pinned]
        if kept:
            return kept
        if _pins_reasoning(self.call):
            self.pinned = None
            return engine.tagged(group, targets, self.call.tags)
        raise InvalidRequest(
            f"previous_response_id names a response held by deployment `{self.pinned}`, which "
            f"model group `{group}` does not include: send the follow-up to that "
            "deployment's model group",
            param="previous_response_id",
            code="invalid_value",
        )

    async def _attempt(
        self, group: str, target: Target, reason: str
    ) -> tuple[T, AttemptResult, float]:
        """One call to one deployment, with how long it took (to the first batch for a
        stream); its failure is recorded (and may cool the deployment down)."""
        route = target.route
        call = attempt_call(self.call, route, self.kind.is_stream, self.deadline)
        started = time.perf_counter()
        try:
            adapter = self.engine.adapter_for(group, target, call)
            # A wildcard group's request is served (and priced) as the model it named.
            self.deployment = adapter.deployment
            value, result = await self.kind.run(adapter, call, self.estimate)
            took_ms = (time.perf_counter() - started) * 1000
            self._note(group, route, reason, latency_ms=took_ms)
            return value, result, took_ms
        except SwitchboardError as exc:
            took_ms = (time.perf_counter() - started) * 1000
            blame(exc, route.deployment)
            cooled = await self.engine.record_failure(group, route, exc)
            self._note(group, route, reason, exc, latency_ms=took_ms, cooled_down=cooled)
            raise
        except BaseException:
            await self.engine.store.release(group, route.name, AttemptResult())
            raise

    async def _wait_for_pinned(
        self, group: str, pinned: str, reason: str, exc: SwitchboardError, is_waiting: bool
    ) -> None:
        """Wait a little for the pinned deployment that could not take the call (`exc`), or
        raise: the clear error once the deadline is too near, `exc` for any other refusal."""
        if not is_waiting:  # one try in the list for the whole wait
            self._note(group, None, reason, exc)
        pause = self._pinned_pause(exc)
        if pause is None:
            if exc.code == NOTHING_ELIGIBLE:
                raise pinned_unavailable(pinned, self.call, exc) from exc
            raise exc
        if not is_waiting:
            log.info("waiting for pinned deployment %s: %s", pinned, exc.message)
        await asyncio.sleep(pause)

    def _pinned_pause(self, exc: SwitchboardError) -> float | None:
        """How long to wait before asking again for a pinned deployment that cannot take the
        call now (cooling down, at its limits): it alone holds what the call refers to, so
        waiting, within the request's deadline, is the only way to serve it. None: do not
        wait (another refusal, or no time left for even one more look)."""
        if exc.code != NOTHING_ELIGIBLE or self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= PINNED_MIN_WAIT_S:
            return None
        # The cooldown's end is known; a slot under a parallel limit frees at any time.
        hint = exc.retry_after_s or PINNED_POLL_S
        return min(hint, PINNED_POLL_S, left - PINNED_MIN_WAIT_S)

    def _note(
        self,
        group: str,
        route: Route | None,
        reason: str,
        failure: SwitchboardError | None = None,
        *,
        latency_ms: float = 0.0,
        cooled_down: bool = False,
    ) -> None:
        """Add a try to the request's list: its deployment (none when nothing could take it),
        its status (ok, or the failure's class) and why it was made. Never message content: a
        try without a deployment keeps our own message (which limits or cooldowns refused)."""
        status = "ok" if failure is None else reliability.error_class(failure)
        if route is None and failure is not None and failure.code == NOTHING_ELIGIBLE:
            status = failure.code
        self.tried.append(
            Attempt(
                deployment="" if route is None else route.deployment.label,
                model_group=group,
                status=status,
                latency_ms=round(latency_ms, 3),
                reason=reason,
                cooled_down=cooled_down,
                detail=failure.message
                if failure is not None and status == NOTHING_ELIGIBLE
                else "",
            )
        )


def pinned_unavailable(label: str, call: Call, cause: SwitchboardError) -> ServiceUnavailable:
    """A pinned call's deadline is near and its one deployment still cannot take it: said
    before the deadline passes (a 504 after it would not say why), with the cooldown's end
    as Retry-After."""
    timeout_s = call.timeout_s
    within = f" within the request's {timeout_s:g}s" if timeout_s is not None else ""
    if _pins_reasoning(call):
        why = (
            f"whose encrypted reasoning was made by deployment `{label}`, the one that "
            "should read it back"
        )
    else:
        why = f"held by deployment `{label}`, the only one that can continue it"
    return ServiceUnavailable(
        f"previous_response_id names a response {why}, and it could not take the "
        f"request{within} ({cause.message}); retry later",
        param="previous_response_id",
        code="deployment_unavailable",
        model=cause.model,
        retry_after_s=cause.retry_after_s,
    )


def request_deadline(call: Call) -> float | None:
    """The request's deadline on the monotonic clock, from the time it has left."""
    return None if call.timeout_s is None else time.monotonic() + call.timeout_s


def out_of_time(cause: SwitchboardError) -> GatewayTimeout:
    """The request's deadline passed while `cause` was the last word: a 504, not the
    attempt's own failure (which was most likely its timeout, cut to the time left)."""
    error = GatewayTimeout(
        "the request's deadline passed before a deployment answered",
        provider=cause.provider,
        model=cause.model,
    )
    error.__cause__ = cause
    return error


def attempt_call(call: Call, route: Route, is_stream: bool, deadline: float | None) -> Any:
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


def _pinned_to(call: Call) -> str | None:
    """The one deployment a call must go to (a Responses follow-up: `Pin`), or None."""
    return call.served_by if isinstance(call, ChatCall) and call.pinned else None


def _pins_reasoning(call: Call) -> bool:
    """Pinned only because its parent's encrypted reasoning was made there (a translated
    follow-up), not because the provider holds the parent."""
    return isinstance(call, ChatCall) and call.pinned == PIN_REASONING
