"""What routing knows about each deployment of each model group: its adapter target, limits,
weight, order, context window and price. Built once at start from the config (or the SDK
Router's model_list)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from workers import pricing
from workers.deployment import Deployment
from workers.routing.store import Limits
from workers.settings import ModelEntry, RouterSettings


class Route(msgspec.Struct, frozen=True, kw_only=True):
    """One deployment as routing sees it."""

    deployment: Deployment
    limits: Limits = Limits()
    weight: float | None = None
    # Lower order is tried first; higher orders only when every lower one is unavailable.
    order: int | None = None
    # Most prompt tokens the deployment accepts (model_info, else the price table).
    max_input_tokens: int | None = None
    # USD per token (overrides, else the price table); None when unknown.
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    # litellm_params.tags: which tagged requests it takes (router_settings.enable_tag_filtering).
    tags: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.deployment.label

    @property
    def cost_per_token(self) -> float | None:
        if self.input_cost_per_token is None and self.output_cost_per_token is None:
            return None
        return (self.input_cost_per_token or 0.0) + (self.output_cost_per_token or 0.0)


class RoutingPlan(msgspec.Struct, frozen=True, kw_only=True):
    groups: dict[str, list[Route]]
    settings: RouterSettings = RouterSettings()

    def group_names(self) -> dict[str, list[str]]:
        """Model group -> deployment names: what `read_figures` wants."""
        return {group: [route.name for route in routes] for group, routes in self.groups.items()}


def build_plan(
    deployments: Mapping[str, Sequence[Deployment]],
    model_list: Sequence[ModelEntry],
    settings: RouterSettings,
) -> RoutingPlan:
    """Zip each group's deployments with their model_list entries (the same order)."""
    groups: dict[str, list[Route]] = {}
    for group, targets in deployments.items():
        entries = [entry for entry in model_list if entry.model_name == group]
        if len(entries) != len(targets):
            raise ValueError(f"model group {group!r}: deployments and entries do not match")
        groups[group] = [
            route_for(target, entry, settings)
            for target, entry in zip(targets, entries, strict=True)
        ]
    return RoutingPlan(groups=groups, settings=settings)


def plan_without_limits(
    deployments: Mapping[str, Sequence[Deployment]], settings: RouterSettings
) -> RoutingPlan:
    groups = {
        group: [route_for(d, None, settings) for d in ds] for group, ds in deployments.items()
    }
    return RoutingPlan(groups=groups, settings=settings)


def route_for(deployment: Deployment, entry: ModelEntry | None, settings: RouterSettings) -> Route:
    params = entry.litellm_params if entry is not None else None
    info = entry.model_info if entry is not None else None
    price_model = deployment.base_model or deployment.model
    price = pricing.lookup_price(deployment.provider, price_model)
    max_parallel = params.max_parallel_requests if params else None
    return Route(
        deployment=deployment,
        limits=Limits(
            rpm=_first_int(params.rpm, entry.rpm, info.rpm) if params and entry and info else None,
            tpm=_first_int(params.tpm, entry.tpm, info.tpm) if params and entry and info else None,
            max_parallel_requests=max_parallel or settings.default_max_parallel_requests,
        ),
        weight=params.weight if params else None,
        tags=tuple(params.tags) if params else (),
        order=params.order if params else None,
        max_input_tokens=(info.max_input_tokens if info else None)
        or pricing.context_window(deployment.provider, price_model),
        input_cost_per_token=_first(
            deployment.input_cost_per_token, price.input_cost_per_token if price else None
        ),
        output_cost_per_token=_first(
            deployment.output_cost_per_token, price.output_cost_per_token if price else None
        ),
    )


def _first(*values: float | None) -> float | None:
    return next((v for v in values if v is not None), None)


def _first_int(*values: int | None) -> int | None:
    return next((v for v in values if v is not None), None)
