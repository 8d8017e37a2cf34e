"""The front door's Prometheus metrics. Label children are made once per label set and
cached, never per request."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

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


class FrontDoorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "switchboard_requests_total",
            "Requests answered by this front door, by model group and HTTP status.",
            ["model_group", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "switchboard_request_duration_seconds",
            "Time from request received to response complete (streams: to the last event).",
            ["model_group"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "switchboard_time_to_first_token_seconds",
            "Stream time to first event, as the client sees it.",
            ["model_group"],
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
        self.in_flight = Gauge(
            "switchboard_front_door_in_flight_requests",
            "Requests this front door is waiting on or relaying.",
            registry=registry,
        )
        self.open_streams = Gauge(
            "switchboard_front_door_open_streams",
            "SSE streams this front door is relaying.",
            registry=registry,
        )
        self.queue_depth = Gauge(
            "switchboard_queue_depth",
            "Request entries waiting for a worker, per lane (cluster-wide, from Redis).",
            ["lane"],
            registry=registry,
        )
        self.queue_pending = Gauge(
            "switchboard_queue_pending",
            "Request entries a worker holds but has not acknowledged, per lane.",
            ["lane"],
            registry=registry,
        )
        self.live_workers = Gauge(
            "switchboard_live_workers",
            "Workers whose heartbeat is fresh (cluster-wide).",
            registry=registry,
        )
        self.workers_in_flight = Gauge(
            "switchboard_workers_in_flight_requests",
            "Requests the live workers are running (cluster-wide, from their heartbeats).",
            registry=registry,
        )
        self.workers_capacity = Gauge(
            "switchboard_workers_capacity",
            "Concurrency slots of the live workers (cluster-wide).",
            registry=registry,
        )
        self.last_heartbeat_age = Gauge(
            "switchboard_worker_heartbeat_age_seconds",
            "Seconds since the freshest worker heartbeat (cluster-wide).",
            registry=registry,
        )
        self._by_group: dict[str, tuple[Histogram, Histogram, Histogram]] = {}
        self._by_status: dict[tuple[str, int], Counter] = {}

    def observe(self, group: str, status: int, duration_s: float, overhead_s: float | None) -> None:
        counter = self._by_status.get((group, status))
        if counter is None:
            counter = self.requests.labels(group, str(status))
            self._by_status[(group, status)] = counter
        counter.inc()
        duration, _ttft, overhead = self._group(group)
        duration.observe(duration_s)
        if overhead_s is not None:
            overhead.observe(max(0.0, overhead_s))

    def observe_ttft(self, group: str, seconds: float) -> None:
        self._group(group)[1].observe(seconds)

    def _group(self, group: str) -> tuple[Histogram, Histogram, Histogram]:
        children = self._by_group.get(group)
        if children is None:
            children = (
                self.duration.labels(group),
                self.ttft.labels(group),
                self.overhead.labels(group),
            )
            self._by_group[group] = children
        return children
