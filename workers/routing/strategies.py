"""Routing strategies: given the eligible deployments and their live figures, pick one and
say why. One function per strategy; `STRATEGIES` maps LiteLLM's names to them.

The reason names every candidate with the figure the strategy compared (`a=3, b=1`), so the
router's debug line explains a decision without another look at Redis."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence

import msgspec

from workers.routing.figures import NO_FIGURES, DeploymentFigures
from workers.routing.plan import Route

# latency-based-routing sends this share of requests to a deployment other than the
# fastest, so one that recovered (or was never measured) gets measured again.
EXPLORATION_RATE = 0.05


class PickContext(msgspec.Struct, kw_only=True):
    figures: Mapping[str, DeploymentFigures]
    rng: random.Random
    is_stream: bool = False
    # round-robin's shared counter (1, 2, 3, ...).
    cursor: int = 0
    # latency-based-routing: routes within this fraction of the fastest share traffic.
    latency_buffer: float = 0.0

    def of(self, route: Route) -> DeploymentFigures:
        return self.figures.get(route.name, NO_FIGURES)


class Reason:
    """Why a strategy picked what it did, as text made only when a debug line is written:
    picks happen on every request, debug lines rarely."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make

    def __str__(self) -> str:
        return self._make()


Pick = tuple[Route, Reason]
Strategy = Callable[[Sequence[Route], PickContext], Pick]


def simple_shuffle(routes: Sequence[Route], ctx: PickContext) -> Pick:
    """Random, in proportion to `weight`, else rpm, else tpm, else evenly."""
    for field in ("weight", "rpm", "tpm"):
        given = [_share(route, field) for route in routes]
        if any(value is not None for value in given):
            # A deployment without the field gets the largest share given to another.
            biggest = max(value for value in given if value is not None)
            weights = [biggest if value is None else value for value in given]
            if sum(weights) > 0:
                route = ctx.rng.choices(list(routes), weights=weights)[0]
                return route, _weighted(field, routes, weights)
    return ctx.rng.choice(list(routes)), Reason(lambda: f"shuffled evenly among {_names(routes)}")


def _weighted(field: str, routes: Sequence[Route], weights: Sequence[float]) -> Reason:
    return Reason(lambda: f"weighted by {field} ({_named(routes, weights)})")


def round_robin(routes: Sequence[Route], ctx: PickContext) -> Pick:
    route = routes[ctx.cursor % len(routes)]
    return route, Reason(lambda: f"turn {ctx.cursor} over {_names(routes)}")


def least_busy(routes: Sequence[Route], ctx: PickContext) -> Pick:
    counts = [ctx.of(route).in_flight for route in routes]
    fewest = min(counts)
    tied = [route for route, count in zip(routes, counts, strict=True) if count == fewest]
    return ctx.rng.choice(tied), Reason(lambda: f"fewest in flight ({_named(routes, counts)})")


def lowest_latency(routes: Sequence[Route], ctx: PickContext) -> Pick:
    """Lowest TTFT for streams (latency per output token otherwise); unmeasured first."""
    scores = [_latency(ctx.of(route), ctx.is_stream) for route in routes]
    metric = "ttft ms" if ctx.is_stream else "ms/token"

    def shown() -> str:
        return f"{metric} {_named(routes, scores)}"

    unmeasured = [route for route, score in zip(routes, scores, strict=True) if score is None]
    if unmeasured:
        return ctx.rng.choice(unmeasured), Reason(lambda: f"not measured yet ({shown()})")
    measured = [score for score in scores if score is not None]
    best = min(measured)
    ceiling = best * (1 + ctx.latency_buffer)
    fast = [route for route, score in zip(routes, measured, strict=True) if score <= ceiling]
    slow = [route for route in routes if route not in fast]
    if slow and ctx.rng.random() < EXPLORATION_RATE:
        return ctx.rng.choice(slow), Reason(lambda: f"exploring ({shown()})")
    within = f" within {ctx.latency_buffer:.0%}" if ctx.latency_buffer else ""
    return ctx.rng.choice(fast), Reason(lambda: f"fastest{within} ({shown()})")


def lowest_cost(routes: Sequence[Route], ctx: PickContext) -> Pick:
    """Cheapest per token (unknown price last), then fewest in flight."""
    costs = [route.cost_per_token for route in routes]
    ranked = [math.inf if cost is None else cost for cost in costs]
    cheapest = min(ranked)
    tied = [route for route, cost in zip(routes, ranked, strict=True) if cost == cheapest]
    route, load = least_busy(tied, ctx)
    return route, Reason(lambda: f"cheapest (USD/token {_named(routes, costs)}); then {load}")


def lowest_usage(routes: Sequence[Route], ctx: PickContext) -> Pick:
    """Fewest tokens used this minute, then fewest requests (LiteLLM's usage-based v2)."""
    usage = [(ctx.of(route).tpm_used, ctx.of(route).rpm_used) for route in routes]
    least = min(usage)
    tied = [route for route, used in zip(routes, usage, strict=True) if used == least]

    def shown() -> str:
        return ", ".join(
            f"{route.name}={tpm}/{rpm}" for route, (tpm, rpm) in zip(routes, usage, strict=True)
        )

    return ctx.rng.choice(tied), Reason(
        lambda: f"least used this minute (tokens/requests {shown()})"
    )


STRATEGIES: dict[str, Strategy] = {
    "simple-shuffle": simple_shuffle,
    "round-robin": round_robin,
    "least-busy": least_busy,
    "latency-based-routing": lowest_latency,
    "cost-based-routing": lowest_cost,
    "usage-based-routing": lowest_usage,
    "usage-based-routing-v2": lowest_usage,
}


def _share(route: Route, field: str) -> float | None:
    if field == "weight":
        return route.weight
    value = route.limits.rpm if field == "rpm" else route.limits.tpm
    return None if value is None else float(value)


def _latency(figures: DeploymentFigures, is_stream: bool) -> float | None:
    return figures.ttft_ms if is_stream else figures.latency_ms_per_token


def _names(routes: Sequence[Route]) -> str:
    return ", ".join(route.name for route in routes)


def _named(routes: Sequence[Route], values: Sequence[float | None]) -> str:
    """`a=3, b=1`: each candidate with the figure compared; `?` where there is none."""
    return ", ".join(
        f"{route.name}={'?' if value is None else f'{value:.4g}'}"
        for route, value in zip(routes, values, strict=True)
    )
