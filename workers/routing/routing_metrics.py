"""A worker's routing metrics (catalogued in docs/metrics.md): the live figures its last
routing decision in each model group read, and the decisions, failures, retries, fallbacks
and cooldowns it made.

The gauges are set from the snapshot the router reads anyway, so exporting them costs no
Redis round trip; they show exactly what this worker decided from. A group with one
deployment takes no snapshot (admission alone decides), so its gauges stay unset.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge

from workers.routing.figures import DeploymentFigures

LABELS = ["model_group", "deployment"]


class RoutingMetrics:
    """Implements workers.routing.observer.RoutingObserver for one worker's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._define_figures(registry)
        self._define_events(registry)
        self._families = FigureFamilies(
            self.in_flight,
            self.cooldown,
            self.ttft,
            self.latency_per_token,
            self.rpm_used,
            self.tpm_used,
            self.minute_failures,
        )
        self._figures: dict[tuple[str, str], FigureGauges] = {}
        self._read_at: dict[str, Gauge] = {}
        self._counters: dict[tuple[Counter, tuple[str, ...]], Counter] = {}

    def _define_figures(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, documentation: str) -> Gauge:
            return Gauge(name, documentation, LABELS, registry=registry)

        self.in_flight = gauge(
            "switchboard_worker_routing_in_flight_requests",
            "Requests running on a deployment (cluster-wide), as this worker last read them.",
        )
        self.cooldown = gauge(
            "switchboard_worker_routing_cooldown_remaining_seconds",
            "Cooldown left on a deployment, as this worker last read it; 0 when it serves.",
        )
        self.ttft = gauge(
            "switchboard_worker_routing_ttft_average_seconds",
            "Moving average time to first token of a deployment, as this worker last read it.",
        )
        self.latency_per_token = gauge(
            "switchboard_worker_routing_latency_per_token_average_seconds",
            "Moving average latency per output token, as this worker last read it.",
        )
        self.rpm_used = gauge(
            "switchboard_worker_routing_minute_requests",
            "Requests a deployment took this clock minute, as this worker last read them.",
        )
        self.tpm_used = gauge(
            "switchboard_worker_routing_minute_tokens",
            "Tokens a deployment took this clock minute, as this worker last read them.",
        )
        self.minute_failures = gauge(
            "switchboard_worker_routing_minute_failures",
            "Failed attempts on a deployment this clock minute (cluster-wide), as this worker "
            "last read them.",
        )
        self.read_at = Gauge(
            "switchboard_worker_routing_figures_timestamp_seconds",
            "Unix time this worker last read a model group's figures to route a request.",
            ["model_group"],
            registry=registry,
        )

    def _define_events(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter(
            "switchboard_worker_routing_decisions_total",
            "Attempts this worker routed to a deployment.",
            LABELS,
            registry=registry,
        )
        self.failures = Counter(
            "switchboard_worker_deployment_failures_total",
            "Failed attempts on a deployment, by LiteLLM's error class.",
            [*LABELS, "error_class"],
            registry=registry,
        )
        self.retries = Counter(
            "switchboard_worker_retries_total",
            "Retries this worker started, by the deployment whose failure caused them.",
            LABELS,
            registry=registry,
        )
        self.fallbacks = Counter(
            "switchboard_worker_fallbacks_total",
            "Times this worker moved a request from a model group to a fallback group.",
            ["model_group", "fallback_group"],
            registry=registry,
        )
        self.cooldowns = Counter(
            "switchboard_worker_cooldowns_total",
            "Cooldowns of a deployment that this worker's failure report started.",
            LABELS,
            registry=registry,
        )
        self.fallbacks_skipped = Counter(
            "switchboard_worker_fallbacks_skipped_total",
            "Fallback groups this worker did not try for a request, by reason (key_scope: "
            "outside the caller's key scope).",
            ["model_group", "fallback_group", "reason"],
            registry=registry,
        )

    # ------------------------------------------------------------------ RoutingObserver

    def figures_read(self, group: str, figures: Mapping[str, DeploymentFigures]) -> None:
        for name, figure in figures.items():
            gauges = self._figures.get((group, name))
            if gauges is None:
                gauges = FigureGauges(self._families, group, name)
                self._figures[(group, name)] = gauges
            gauges.set(figure)
        read_at = self._read_at.get(group)
        if read_at is None:
            read_at = self._read_at[group] = self.read_at.labels(group)
        read_at.set(time.time())

    def routed(self, group: str, deployment: str) -> None:
        self._child(self.decisions, group, deployment).inc()

    def failed(self, group: str, deployment: str, error_class: str) -> None:
        self._child(self.failures, group, deployment, error_class).inc()

    def retried(self, group: str, deployment: str) -> None:
        self._child(self.retries, group, deployment).inc()

    def fell_back(self, group: str, fallback: str) -> None:
        self._child(self.fallbacks, group, fallback).inc()

    def cooled_down(self, group: str, deployment: str) -> None:
        self._child(self.cooldowns, group, deployment).inc()

    def fallback_skipped(self, group: str, fallback: str, reason: str) -> None:
        self._child(self.fallbacks_skipped, group, fallback, reason).inc()

    def _child(self, counter: Counter, *labels: str) -> Counter:
        """The label child, made once (labels come from the config, so they are bounded)."""
        key = (counter, labels)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = counter.labels(*labels)
        return child


class FigureFamilies(NamedTuple):
    """The gauge families a deployment's routing figures are exported as (front doors and
    workers name them differently)."""

    in_flight: Gauge
    cooldown: Gauge
    ttft: Gauge
    latency_per_token: Gauge
    rpm_used: Gauge
    tpm_used: Gauge
    minute_failures: Gauge


class FigureGauges:
    """One deployment's routing-figure gauges, label children made once."""

    __slots__ = ("_children",)

    def __init__(self, families: FigureFamilies, group: str, name: str) -> None:
        self._children = FigureFamilies(*(family.labels(group, name) for family in families))

    def set(self, figures: DeploymentFigures) -> None:
        children = self._children
        children.in_flight.set(figures.in_flight)
        children.cooldown.set(figures.cooldown_s)
        # No average yet (nothing finished there lately): NaN, which PromQL skips.
        children.ttft.set(_seconds(figures.ttft_ms))
        children.latency_per_token.set(_seconds(figures.latency_ms_per_token))
        children.rpm_used.set(figures.rpm_used)
        children.tpm_used.set(figures.tpm_used)
        children.minute_failures.set(figures.minute_failures)


def _seconds(ms: float | None) -> float:
    return math.nan if ms is None else ms / 1000
