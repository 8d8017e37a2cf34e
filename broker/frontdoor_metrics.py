"""The front door's Prometheus metrics (catalogued in docs/metrics.md). Label children are
made once per label set and cached, never per request; every label value comes from the
config (model groups, deployments, lanes) or a small fixed set (HTTP status, token kind).

Every gauge says how front doors sharing a port combine it (`multiprocess_mode`, used only
then: broker/shared_metrics.py): this process's own figures add up (`livesum`), the
cluster's figures every front door reads from Redis take the freshest (`livemostrecent`)."""

from __future__ import annotations

from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from workers.envelopes import Meta
from workers.routing.observer import NO_DEPLOYMENT

# How gauges combine across front doors sharing a port (see the module docstring).
OWN: Final = "livesum"
CLUSTER: Final = "livemostrecent"
# 1 ms to 60 s: resolves a gateway's own overhead as well as a long generation.
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)


class DeploymentChildren:
    """The label children of one (model group, deployment), made on its first request."""

    __slots__ = (
        "requests",
        "duration",
        "ttft",
        "prompt",
        "completion",
        "cached",
        "estimated",
        "cost",
        "retries",
        "upstream",
    )

    def __init__(self, metrics: FrontDoorMetrics, group: str, deployment: str) -> None:
        self.requests: dict[int, Counter] = {}
        self.duration = metrics.duration.labels(group, deployment)
        self.ttft = metrics.ttft.labels(group, deployment)
        self.prompt = metrics.tokens.labels(group, deployment, "prompt")
        self.completion = metrics.tokens.labels(group, deployment, "completion")
        self.cached = metrics.tokens.labels(group, deployment, "cached_prompt")
        self.estimated = metrics.tokens.labels(group, deployment, "estimated")
        self.cost = metrics.cost.labels(group, deployment)
        self.retries = metrics.retries.labels(group, deployment)
        self.upstream = metrics.upstream.labels(group, deployment)


class GroupChildren:
    __slots__ = ("overhead", "fallbacks", "takeovers")

    def __init__(self, metrics: FrontDoorMetrics, group: str) -> None:
        self.overhead = metrics.overhead.labels(group)
        self.fallbacks = metrics.fallbacks.labels(group)
        self.takeovers = metrics.takeovers.labels(group)


class KeyChildren:
    """The label children of one API key alias (config-bounded), made on its first request."""

    __slots__ = ("requests", "prompt", "completion", "cost")

    def __init__(self, metrics: FrontDoorMetrics, alias: str) -> None:
        self.requests: dict[int, Counter] = {}
        self.prompt = metrics.key_tokens.labels(alias, "prompt")
        self.completion = metrics.key_tokens.labels(alias, "completion")
        self.cost = metrics.key_cost.labels(alias)


class FrontDoorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        ProcessCollector(registry=registry)
        self._define_requests(registry)
        self._define_keys(registry)
        self._define_front_door(registry)
        self._define_cluster(registry)
        self._define_routing(registry)
        self._by_group: dict[str, GroupChildren] = {}
        self._by_deployment: dict[tuple[str, str], DeploymentChildren] = {}
        self._by_key: dict[str, KeyChildren] = {}

    def _define_requests(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "switchboard_requests_total",
            "Requests answered by this front door, by model group, deployment and HTTP status.",
            ["model_group", "deployment", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "switchboard_request_duration_seconds",
            "Time from request received to response complete (streams: to the last event), "
            "by the deployment that served it.",
            ["model_group", "deployment"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "switchboard_time_to_first_token_seconds",
            "Stream time to first event, as the client sees it, by the deployment serving it.",
            ["model_group", "deployment"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.overhead = Histogram(
            "switchboard_gateway_overhead_seconds",
            "Time the gateway added: queueing, Redis and relaying (request time minus the "
            "time spent waiting on the provider, to first byte for streams).",
            ["model_group"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.upstream = Histogram(
            "switchboard_upstream_duration_seconds",
            "Time the worker waited on the provider for the successful attempt: the whole "
            "response, or the first batch for streams.",
            ["model_group", "deployment"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.tokens = Counter(
            "switchboard_tokens_total",
            "Tokens the providers reported, by kind: prompt, completion, cached_prompt "
            "(the part of the prompt served from the provider's cache), estimated (the part "
            "of prompt and completion the gateway estimated: an attempt that died with its "
            "worker, whose stream another worker continued).",
            ["model_group", "deployment", "kind"],
            registry=registry,
        )
        self.cost = Counter(
            "switchboard_cost_usd_total",
            "What the requests cost at list prices, in US dollars.",
            ["model_group", "deployment"],
            registry=registry,
        )
        self.retries = Counter(
            "switchboard_retries_total",
            "Extra attempts the workers made before a request was answered.",
            ["model_group", "deployment"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "switchboard_fallbacks_total",
            "Times a request moved to a fallback model group.",
            ["model_group"],
            registry=registry,
        )
        self.takeovers = Counter(
            "switchboard_takeovers_total",
            "Times a worker died (or seemed to) holding a request and another took it over, "
            "counted when the request is answered.",
            ["model_group"],
            registry=registry,
        )

    def _define_keys(self, registry: CollectorRegistry) -> None:
        # Per caller, not per (caller, model, deployment): the per-model figures above answer
        # "which model", these answer "who", and the product would multiply the series.
        self.key_requests = Counter(
            "switchboard_api_key_requests_total",
            "Requests answered by this front door, by the API key's alias and HTTP status.",
            ["api_key_alias", "status"],
            registry=registry,
        )
        self.key_tokens = Counter(
            "switchboard_api_key_tokens_total",
            "Tokens the providers reported, by the API key's alias and kind (prompt, completion).",
            ["api_key_alias", "kind"],
            registry=registry,
        )
        self.key_cost = Counter(
            "switchboard_api_key_cost_usd_total",
            "What an API key's requests cost at list prices, in US dollars.",
            ["api_key_alias"],
            registry=registry,
        )

    def _define_front_door(self, registry: CollectorRegistry) -> None:
        self.in_flight = Gauge(
            "switchboard_front_door_in_flight_requests",
            "Requests this front door is waiting on or relaying.",
            registry=registry,
            multiprocess_mode=OWN,
        )
        self.open_streams = Gauge(
            "switchboard_front_door_open_streams",
            "SSE streams this front door is relaying.",
            registry=registry,
            multiprocess_mode=OWN,
        )

    def _define_cluster(self, registry: CollectorRegistry) -> None:
        self.queue_depth = Gauge(
            "switchboard_queue_depth",
            "Request entries waiting for a worker, per lane (cluster-wide, from Redis).",
            ["lane"],
            registry=registry,
            multiprocess_mode=CLUSTER,
        )
        self.queue_pending = Gauge(
            "switchboard_queue_pending",
            "Request entries a worker holds but has not acknowledged, per lane.",
            ["lane"],
            registry=registry,
            multiprocess_mode=CLUSTER,
        )
        self.queue_oldest_wait = Gauge(
            "switchboard_queue_oldest_wait_seconds",
            "How long the oldest entry no worker has taken yet has waited, per lane (0: none).",
            ["lane"],
            registry=registry,
            multiprocess_mode=CLUSTER,
        )
        self.dead_letters = Gauge(
            "switchboard_dead_letter_entries",
            "Entries in the dead-letter stream (cluster-wide).",
            registry=registry,
            multiprocess_mode=CLUSTER,
        )
        self.live_workers = Gauge(
            "switchboard_live_workers",
            "Workers whose heartbeat is fresh (cluster-wide).",
            registry=registry,
            multiprocess_mode=CLUSTER,
        )
        self.workers_in_flight = Gauge(
            "switchboard_workers_in_flight_requests",
            "Requests the live workers are running (cluster-wide, from their heartbeats).",
            registry=registry,
            multiprocess_mode=CLUSTER,
        )
        self.workers_capacity = Gauge(
            "switchboard_workers_capacity",
            "Concurrency slots of the live workers (cluster-wide).",
            registry=registry,
            multiprocess_mode=CLUSTER,
        )
        self.last_heartbeat_age = Gauge(
            "switchboard_worker_heartbeat_age_seconds",
            "Seconds since the freshest worker heartbeat (cluster-wide).",
            registry=registry,
            multiprocess_mode=CLUSTER,
        )

    def _define_routing(self, registry: CollectorRegistry) -> None:
        labels = ["model_group", "deployment"]
        self.deployment_in_flight = Gauge(
            "switchboard_deployment_in_flight_requests",
            "Requests running on a deployment, summed over every worker (cluster-wide).",
            labels,
            registry=registry,
            multiprocess_mode=CLUSTER,
        )
        self.deployment_cooldown = Gauge(
            "switchboard_deployment_cooldown_remaining_seconds",
            "Seconds until a cooled-down deployment is back in rotation; 0 when it serves.",
            labels,
            registry=registry,
            multiprocess_mode=CLUSTER,
        )
        self.deployment_ttft = Gauge(
            "switchboard_deployment_ttft_average_seconds",
            "The scheduler's moving average of a deployment's time to first token.",
            labels,
            registry=registry,
            multiprocess_mode=CLUSTER,
        )
        self.deployment_latency_per_token = Gauge(
            "switchboard_deployment_latency_per_token_average_seconds",
            "The scheduler's moving average of a deployment's latency per output token.",
            labels,
            registry=registry,
            multiprocess_mode=CLUSTER,
        )
        self.deployment_rpm_used = Gauge(
            "switchboard_deployment_minute_requests",
            "Requests a deployment took in the current clock minute (its rpm budget used).",
            labels,
            registry=registry,
            multiprocess_mode=CLUSTER,
        )
        self.deployment_tpm_used = Gauge(
            "switchboard_deployment_minute_tokens",
            "Tokens a deployment took in the current clock minute (its tpm budget used).",
            labels,
            registry=registry,
            multiprocess_mode=CLUSTER,
        )
        self.deployment_minute_failures = Gauge(
            "switchboard_deployment_minute_failures",
            "Failed attempts on a deployment in the current clock minute, summed over every "
            "worker (what allowed_fails is counted against, all error classes together).",
            labels,
            registry=registry,
            multiprocess_mode=CLUSTER,
        )

    def observe(
        self,
        group: str,
        api_key_alias: str,
        status: int,
        duration_s: float,
        overhead_s: float | None,
        meta: Meta | None = None,
    ) -> None:
        """One answered request; `meta` is its final record's bookkeeping, when it had one."""
        deployment = _deployment_of(meta)
        children = self.deployment(group, deployment)
        counter = children.requests.get(status)
        if counter is None:
            counter = self.requests.labels(group, deployment, str(status))
            children.requests[status] = counter
        counter.inc()
        children.duration.observe(duration_s)
        by_group = self.group(group)
        if overhead_s is not None:
            by_group.overhead.observe(max(0.0, overhead_s))
        by_key = self.key(api_key_alias)
        key_counter = by_key.requests.get(status)
        if key_counter is None:
            key_counter = self.key_requests.labels(api_key_alias, str(status))
            by_key.requests[status] = key_counter
        key_counter.inc()
        if meta is not None and meta.takeovers:
            by_group.takeovers.inc(meta.takeovers)
        if meta is not None and meta.deployment:
            self._account(children, by_group, meta)
            by_key.prompt.inc(meta.prompt_tokens)
            by_key.completion.inc(meta.completion_tokens)
            if meta.cost_usd:
                by_key.cost.inc(meta.cost_usd)

    @staticmethod
    def _account(children: DeploymentChildren, by_group: GroupChildren, meta: Meta) -> None:
        children.upstream.observe(meta.upstream_ms / 1000)
        children.prompt.inc(meta.prompt_tokens)
        children.completion.inc(meta.completion_tokens)
        # Each inc takes a lock: skip the zeros most requests have (the series exist anyway).
        if meta.cached_tokens:
            children.cached.inc(meta.cached_tokens)
        if meta.estimated_tokens:
            children.estimated.inc(meta.estimated_tokens)
        if meta.cost_usd:
            children.cost.inc(meta.cost_usd)
        if meta.attempts > 1:
            children.retries.inc(meta.attempts - 1)
        if meta.fallbacks:
            by_group.fallbacks.inc(meta.fallbacks)

    def observe_ttft(self, group: str, meta: Meta | None, seconds: float) -> None:
        """A stream's first event; its first record's bookkeeping names the deployment."""
        deployment = _deployment_of(meta)
        self.deployment(group, deployment).ttft.observe(seconds)

    def group(self, group: str) -> GroupChildren:
        children = self._by_group.get(group)
        if children is None:
            children = self._by_group[group] = GroupChildren(self, group)
        return children

    def key(self, alias: str) -> KeyChildren:
        children = self._by_key.get(alias)
        if children is None:
            children = self._by_key[alias] = KeyChildren(self, alias)
        return children

    def deployment(self, group: str, deployment: str) -> DeploymentChildren:
        children = self._by_deployment.get((group, deployment))
        if children is None:
            children = DeploymentChildren(self, group, deployment)
            self._by_deployment[(group, deployment)] = children
        return children


def _deployment_of(meta: Meta | None) -> str:
    """The deployment a record names, or NO_DEPLOYMENT when none served."""
    return meta.deployment if meta is not None and meta.deployment else NO_DEPLOYMENT
