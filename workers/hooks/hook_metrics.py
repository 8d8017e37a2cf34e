"""The delivery metrics of a process's callbacks (catalogued in docs/metrics.md), read from
the dispatcher's own counters when Prometheus scrapes: a request pays nothing for them."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from workers.hooks.dispatch import CallbackDispatcher
from workers.hooks.registry import Callbacks


class CallbackCollector(Collector):
    """A worker exports these with or without callbacks (zeros without), so its series are
    the same whatever the config."""

    def __init__(self, dispatcher: CallbackDispatcher | None) -> None:
        self.dispatcher = dispatcher

    def collect(self) -> Iterator[Metric]:
        d = self.dispatcher or _NONE
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


_NONE = CallbackDispatcher(Callbacks())


def register(registry: CollectorRegistry, dispatcher: CallbackDispatcher | None) -> None:
    registry.register(CallbackCollector(dispatcher))
