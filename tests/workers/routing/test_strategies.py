"""Strategies as pure functions of routes and figures; reliability rules in LiteLLM's terms."""

from __future__ import annotations

import random
from collections import Counter

from workers.deployment import Deployment
from workers.errors import (
    ContentPolicyViolation,
    ContextWindowExceeded,
    InvalidRequest,
    ProviderError,
    RateLimited,
)
from workers.routing import reliability
from workers.routing.checks import eligible
from workers.routing.figures import DeploymentFigures
from workers.routing.plan import Route
from workers.routing.store import Limits
from workers.routing.strategies import (
    PickContext,
    least_busy,
    lowest_cost,
    lowest_latency,
    lowest_usage,
    simple_shuffle,
)
from workers.settings import RetryPolicy, RouterSettings


def route(name: str, **fields: object) -> Route:
    return Route(deployment=Deployment(provider="openai", model=name, name=name), **fields)  # type: ignore[arg-type]


def picks(
    strategy: object,
    routes: list[Route],
    figures: dict[str, DeploymentFigures],
    n: int = 1000,
    **ctx: object,
) -> Counter[str]:
    context = PickContext(figures=figures, rng=random.Random(7), **ctx)  # type: ignore[arg-type]
    return Counter(strategy(routes, context)[0].name for _ in range(n))  # type: ignore[operator]


def test_simple_shuffle_follows_weights() -> None:
    counts = picks(simple_shuffle, [route("a", weight=3.0), route("b", weight=1.0)], {})
    assert 650 < counts["a"] < 850


def test_least_busy_picks_the_fewest_in_flight() -> None:
    figures = {"a": DeploymentFigures(in_flight=3), "b": DeploymentFigures(in_flight=1)}
    assert picks(least_busy, [route("a"), route("b")], figures, n=50) == {"b": 50}


def test_latency_based_prefers_the_fastest_and_still_explores() -> None:
    figures = {
        "fast": DeploymentFigures(latency_ms_per_token=5.0),
        "slow": DeploymentFigures(latency_ms_per_token=50.0),
    }
    counts = picks(lowest_latency, [route("fast"), route("slow")], figures)
    assert counts["fast"] > 900 and counts["slow"] > 10


def test_latency_buffer_shares_traffic_among_the_nearly_fastest() -> None:
    figures = {
        "a": DeploymentFigures(latency_ms_per_token=10.0),
        "b": DeploymentFigures(latency_ms_per_token=10.5),
    }
    counts = picks(lowest_latency, [route("a"), route("b")], figures, latency_buffer=0.1)
    assert counts["b"] > 350


def test_latency_based_uses_ttft_for_streams() -> None:
    figures = {
        "a": DeploymentFigures(latency_ms_per_token=1.0, ttft_ms=900.0),
        "b": DeploymentFigures(latency_ms_per_token=9.0, ttft_ms=100.0),
    }
    assert picks(lowest_latency, [route("a"), route("b")], figures, is_stream=True)["b"] > 900


def test_cost_based_breaks_price_ties_by_load() -> None:
    routes = [
        route("pricey", input_cost_per_token=1e-5),
        route("cheap1", input_cost_per_token=1e-7),
        route("cheap2", input_cost_per_token=1e-7),
    ]
    figures = {"cheap1": DeploymentFigures(in_flight=2)}
    assert picks(lowest_cost, routes, figures, n=50) == {"cheap2": 50}


def test_usage_based_picks_the_least_used_this_minute() -> None:
    # LiteLLM's v2: fewest tokens used, then requests. A deployment out of rpm/tpm left is
    # skipped before the strategy runs (see the checks test below).
    figures = {"a": DeploymentFigures(tpm_used=500), "b": DeploymentFigures(tpm_used=400)}
    assert picks(lowest_usage, [route("a"), route("b")], figures, n=50) == {"b": 50}
    figures = {
        "a": DeploymentFigures(tpm_used=400, rpm_used=3),
        "b": DeploymentFigures(tpm_used=400, rpm_used=2),
    }
    assert picks(lowest_usage, [route("a"), route("b")], figures, n=50) == {"b": 50}


def test_checks_skip_cooldowns_limits_and_higher_orders() -> None:
    routes = [
        route("cool"),
        route("full", limits=Limits(rpm=10)),
        route("busy", limits=Limits(max_parallel_requests=1)),
        route("backup", order=2),
        route("ok", order=1),
    ]
    figures = {
        "cool": DeploymentFigures(cooldown_s=3.0),
        "full": DeploymentFigures(rpm_used=10),
        "busy": DeploymentFigures(in_flight=1),
    }
    found = eligible(routes, figures, prompt_tokens=10, check_context=False)
    assert [r.name for r in found.routes] == ["ok"]
    assert found.skipped == {"cooldown": 1, "rpm": 1, "parallel": 1, "order": 1}
    assert found.cooldown_left_s == 3.0


def test_retries_follow_the_policy_per_error_class() -> None:
    policy = RetryPolicy(RateLimitErrorRetries=5, BadRequestErrorRetries=1)
    settings = RouterSettings(retry_policy=policy)
    assert reliability.retries_for(RateLimited("x"), settings, 2) == 5
    assert reliability.retries_for(ProviderError("x"), settings, 2) == 2
    assert reliability.retries_for(InvalidRequest("x"), settings, 2) == 1
    assert reliability.retries_for(InvalidRequest("x"), RouterSettings(), 2) == 0


def test_fallback_kinds_and_the_wildcard() -> None:
    settings = RouterSettings(
        fallbacks=[{"*": ["any"]}, {"a": ["b", "c", "a"]}],
        context_window_fallbacks=[{"a": ["big"]}],
        content_policy_fallbacks=[{"a": ["lax"]}],
        max_fallbacks=2,
    )
    assert reliability.fallback_groups("a", ProviderError("x"), settings) == ["b", "c"]
    assert reliability.fallback_groups("z", ProviderError("x"), settings) == ["any"]
    assert reliability.fallback_groups("a", ContextWindowExceeded("x"), settings) == ["big"]
    assert reliability.fallback_groups("a", ContentPolicyViolation("x"), settings) == ["lax"]
    assert reliability.fallback_groups("a", InvalidRequest("x"), settings) == []
    defaults = RouterSettings(default_fallbacks=["d"])
    assert reliability.fallback_groups("a", RateLimited("x"), defaults) == ["d"]


def test_client_errors_do_not_count_towards_cooldown_unless_the_policy_says() -> None:
    assert reliability.allowed_fails_for(InvalidRequest("x"), RouterSettings()) is None
    assert reliability.allowed_fails_for(RateLimited("x"), RouterSettings(allowed_fails=4)) == 4
