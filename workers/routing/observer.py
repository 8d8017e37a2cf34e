"""What the router reports as it decides: the figures each decision read, and the retries,
fallbacks, failures and cooldowns it started. A worker turns these into its /metrics
(workers/routing/routing_metrics.py); without an observer (the SDK Router) nothing is reported.

Every call happens on the request path, so an observer must be cheap and never block:
it only sets in-process values, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from workers.routing.figures import DeploymentFigures

# The deployment label of what happened before any deployment was chosen: a request that
# failed at the front door (queue deadline, bad body, ...), a retry when none was eligible.
NO_DEPLOYMENT = "none"


class RoutingObserver(Protocol):
    def figures_read(self, group: str, figures: Mapping[str, DeploymentFigures]) -> None:
        """The live figures a routing decision in `group` read (one snapshot)."""
        ...

    def routed(self, group: str, deployment: str) -> None:
        """An attempt was routed to (and admitted on) `deployment`."""
        ...

    def failed(self, group: str, deployment: str, error_class: str) -> None:
        """An attempt on `deployment` failed with LiteLLM's `error_class`."""
        ...

    def retried(self, group: str, deployment: str) -> None:
        """A request is retried within `group` after `deployment` failed it."""
        ...

    def fell_back(self, group: str, fallback: str) -> None:
        """A request moved from `group` to the `fallback` model group."""
        ...

    def cooled_down(self, group: str, deployment: str) -> None:
        """`deployment` went out of rotation for cooldown_time (cluster-wide)."""
        ...

    def fallback_skipped(self, group: str, fallback: str, reason: str) -> None:
        """A request did not move from `group` to `fallback` (`key_scope`: the caller's key
        may not reach it)."""
        ...


class Unobserved:
    """The observer of a router nobody scrapes."""

    def figures_read(self, group: str, figures: Mapping[str, DeploymentFigures]) -> None:
        pass

    def routed(self, group: str, deployment: str) -> None:
        pass

    def failed(self, group: str, deployment: str, error_class: str) -> None:
        pass

    def retried(self, group: str, deployment: str) -> None:
        pass

    def fell_back(self, group: str, fallback: str) -> None:
        pass

    def cooled_down(self, group: str, deployment: str) -> None:
        pass

    def fallback_skipped(self, group: str, fallback: str, reason: str) -> None:
        pass
