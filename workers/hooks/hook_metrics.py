"""The delivery metrics of a process's callbacks (catalogued in docs/metrics.md), read from
the delivery's own counters when Prometheus scrapes: a request pays nothing for them. The
worker's delivery is its consumer of the finished-request stream (workers/hooks/consumer.py),
the front door's its in-process dispatcher (for what it answers itself)."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from workers.hooks.dispatch import CallbackDispatcher
from workers.hooks.registry import Callbacks


class Delivery(Protocol):
    offered: int
    dropped: int
    delivered: collections.Counter[str]
    failed: collections.Counter[str]

    @property
    def depth(self) -> int: ...


class CallbackCollector(Collector):
    """A worker exports these with or without callbacks (zeros without), so its series are
    the same whatever the config."""

    def __init__(self, delivery: Delivery | None) -> None:
        self.delivery = delivery

    def collect(self) -> Iterator[Metric]:
        d = self.delivery or _NONE
        delivered = CounterMetricFamily(
            "switchboard_callback_deliveries",
            "Events handed to each callback, by callback and outcome (delivered, failed: it "
            "raised or timed out).",
            labels=["callback", "outcome"],
        )
        for name, count in d.delivered.items():
            delivered.add_metric([name, "delivered"], count)
        for name, count in d.failed.items():
            delivered.add_metric([name, "failed"], count)
        yield delivered
        yield CounterMetricFamily(
            "switchboard_callback_events_dropped",
            "Finished-call events dropped because the delivery queue was full (oldest first).",
            value=d.dropped,
        )
        yield CounterMetricFamily(
            "switchboard_callback_events",
            "Finished-call events queued for the callbacks.",
            value=d.offered,
        )
        yield GaugeMetricFamily(
            "switchboard_callback_queue_depth",
            "Events waiting for delivery to the callbacks.",
            value=d.depth,
        )
        # The service's backlog on the finished-request stream (the same figure as the
        # depth above, named for the alert) and what its give-up policy dropped.
        yield GaugeMetricFamily(
            "switchboard_callback_backlog",
            "Finished-request events on the stream the callbacks group has not delivered.",
            value=d.depth,
        )
        yield CounterMetricFamily(
            "switchboard_callback_events_given_up",
            "Events a callback failed for longer than its retries allow (then acknowledged).",
            value=getattr(d, "given_up", 0),
        )
        yield CounterMetricFamily(
            "switchboard_callback_front_spans_given_up",
            "Front door span records (relays, its own answers) a span export failed for "
            "longer than retry_for_s (then acknowledged).",
            value=getattr(d, "front_spans_given_up", 0),
        )


_NONE = CallbackDispatcher(Callbacks())


def register(registry: CollectorRegistry, delivery: Delivery | None) -> None:
    registry.register(CallbackCollector(delivery))
