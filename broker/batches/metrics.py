"""The batch runners' Prometheus metrics, on the front door's registry: batches running
here, and lines written by outcome (a rate of it is lines per second). The batch lane's
depth is the front door's `switchboard_queue_depth{lane="batches"}` (broker/monitor.py)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class BatchMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.running = Gauge(
            "switchboard_batches_running",
            "Batches this front door is running (holding the lease of).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        lines = Counter(
            "switchboard_batch_lines",
            "Batch lines written to an output (completed) or error (failed) file.",
            ["outcome"],
            registry=registry,
        )
        # Label children made once, not per line.
        self.completed = lines.labels("completed")
        self.failed = lines.labels("failed")
