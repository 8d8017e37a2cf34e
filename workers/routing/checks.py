"""Pre-call checks: which deployments of a group may take this request right now.

Always skipped: deployments cooling down and those at their rpm/tpm/max_parallel_requests
limits. With `enable_pre_call_checks`, also those whose context window the prompt exceeds.
Among the rest only the lowest `order` competes; deployments that already failed this
request are skipped while others remain.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence

import msgspec

from workers.errors import ContextWindowExceeded, RateLimited, SwitchboardError
from workers.routing.figures import NO_FIGURES, DeploymentFigures
from workers.routing.plan import Route

# A deployment held back only by its per-minute limits is free again at the next minute.
SECONDS_PER_MINUTE = 60.0


class Eligible(msgspec.Struct, kw_only=True):
    routes: list[Route]
    # Why the others were skipped: reason -> how many.
    skipped: Counter[str]
    # Shortest cooldown left among skipped deployments (for Retry-After), if any.
    cooldown_left_s: float | None = None


def skip_reason(
    route: Route, figures: DeploymentFigures, prompt_tokens: int, check_context: bool
) -> str | None:
    limits = route.limits
    if figures.is_cooling_down:
        return "cooldown"
    if limits.rpm is not None and figures.rpm_used + 1 > limits.rpm:
        return "rpm"
    if limits.tpm is not None and figures.tpm_used + prompt_tokens > limits.tpm:
        return "tpm"
    parallel = limits.max_parallel_requests
    if parallel is not None and figures.in_flight >= parallel:
        return "parallel"
    if check_context and route.max_input_tokens and prompt_tokens > route.max_input_tokens:
        return "context_window"
    return None


def eligible(
    routes: Sequence[Route],
    figures: Mapping[str, DeploymentFigures],
    *,
    prompt_tokens: int,
    check_context: bool,
    avoid: Collection[str] = (),
) -> Eligible:
    kept: list[Route] = []
    skipped: Counter[str] = Counter()
    cooldowns: list[float] = []
    for route in routes:
        seen = figures.get(route.name, NO_FIGURES)
        reason = skip_reason(route, seen, prompt_tokens, check_context)
        if reason is None:
            kept.append(route)
            continue
        skipped[reason] += 1
        if reason == "cooldown":
            cooldowns.append(seen.cooldown_s)
    if kept:
        lowest = min(_order(route) for route in kept)
        behind = sum(1 for route in kept if _order(route) != lowest)
        if behind:  # a zero count would show in the decision's log line as noise
            skipped["order"] += behind
        kept = [route for route in kept if _order(route) == lowest]
    fresh = [route for route in kept if route.name not in avoid]
    if fresh and len(fresh) < len(kept):
        skipped["failed_before"] += len(kept) - len(fresh)
        kept = fresh
    return Eligible(routes=kept, skipped=skipped, cooldown_left_s=min(cooldowns, default=None))


def nothing_eligible(group: str, found: Eligible, prompt_tokens: int) -> SwitchboardError:
    """The error when no deployment may take the request (it may trigger a fallback)."""
    reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(found.skipped.items()))
    if set(found.skipped) == {"context_window"}:
        return ContextWindowExceeded(
            f"the prompt (about {prompt_tokens} tokens) exceeds the context window of every "
            f"deployment of model group `{group}`",
            model=group,
        )
    retry_after = found.cooldown_left_s
    if retry_after is None or {"rpm", "tpm"} & set(found.skipped):
        retry_after = SECONDS_PER_MINUTE if retry_after is None else retry_after
    return RateLimited(
        f"no deployment of model group `{group}` can take the request now ({reasons})",
        code="no_deployments_available",
        model=group,
        retry_after_s=round(retry_after, 3),
    )


def _order(route: Route) -> int:
    return route.order if route.order is not None else 0
