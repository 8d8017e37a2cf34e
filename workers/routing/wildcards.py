"""Wildcard model groups, as LiteLLM routes them (issue #16).

A `model_name` holding one `*` (`"*"`, `"anthropic/*"`) serves every model name it matches;
the part the `*` matched fills the `*` of its deployments' model, giving the upstream model:
`model_name: "anthropic/*"` + `model: anthropic/*` turns a request for
`anthropic/claude-haiku-4-5` into Anthropic's `claude-haiku-4-5`. A model group named
exactly wins over any pattern, and the pattern with the most literal text wins over others
(`anthropic/*` before `*`), as LiteLLM's pattern router orders them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from workers import pricing
from workers.deployment import Deployment

WILDCARD = "*"


def is_wildcard(group: str) -> bool:
    return WILDCARD in group


def matched_part(pattern: str, model: str) -> str | None:
    """What the `*` of `pattern` matches in `model` (never empty), or None."""
    prefix, _, suffix = pattern.partition(WILDCARD)
    if len(model) <= len(prefix) + len(suffix):
        return None
    if not (model.startswith(prefix) and model.endswith(suffix)):
        return None
    return model[len(prefix) : len(model) - len(suffix)]


class Patterns:
    """The wildcard groups of a config, most specific first."""

    def __init__(self, groups: Iterable[str]) -> None:
        found = [g for g in groups if is_wildcard(g)]
        self.ordered = sorted(found, key=lambda g: len(g) - g.count(WILDCARD), reverse=True)

    def __bool__(self) -> bool:
        return bool(self.ordered)

    def group_for(self, model: str) -> str | None:
        """The wildcard group serving `model`, if any pattern matches it."""
        for pattern in self.ordered:
            if matched_part(pattern, model) is not None:
                return pattern
        return None


def upstream_model(deployment_model: str, group: str, requested: str) -> str:
    """The deployment's model with its `*` filled by what `group`'s `*` matched."""
    part = matched_part(group, requested)
    if part is None or not is_wildcard(deployment_model):
        return deployment_model
    return deployment_model.replace(WILDCARD, part, 1)


def listed_names(group: str, deployments: Iterable[Deployment]) -> Iterator[str]:
    """The model names a wildcard group answers to that the price table knows: what
    /v1/models shows for it instead of a bare `*` (the group serves others too)."""
    seen: set[str] = set()
    for deployment in deployments:
        for key, price in pricing.price_table().models.items():
            if price.provider != deployment.provider:
                continue
            model = key.removeprefix(f"{deployment.provider}/")
            part = matched_part(deployment.model, model) if is_wildcard(deployment.model) else None
            if part is None:
                continue
            name = group.replace(WILDCARD, part, 1)
            if name not in seen:
                seen.add(name)
                yield name
