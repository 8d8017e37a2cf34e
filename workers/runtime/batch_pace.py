"""How many batch lines a worker may hold (issue #20): never more than `batches.max_share`
of its slots (one slot is always left to interactive requests), and, within that, a cap
that adapts to interactive traffic, AIMD-style.

Slots alone do not protect interactive latency: batch lines and interactive requests share
the worker's event loop and the machine's CPU, so a worker that takes a hundred batch lines
at once runs each interactive step behind a hundred batch steps (benchmarks/batches.py
measured interactive p99 +34-157% that way). So while interactive requests are about and
the worker's loop runs late (`batches.busy_loop_lag_ms`, workers/loop_lag.py: the CPU is
short), the cap halves; while the loop is on time, or no interactive request is about, it
grows by one line a tick. Batches never stall (the cap is at least one line) and drain at
full speed when nothing interactive runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from prometheus_client import Gauge

from workers.loop_lag import LoopLag

# How often the cap moves: a tick long enough for the last move to show in the lag.
TICK_S = 0.1
# After a halving, the lines held beyond the new cap finish first: no second halving until
# then (else the cap collapses to one line before the first cut shows).
HOLD_AFTER_CUT_S = 0.3
# An interactive request started this recently counts as interactive traffic about.
INTERACTIVE_RECENT_S = 1.0


def batch_share(concurrency: int, max_share: float) -> int:
    """The most batch lines a worker of `concurrency` slots holds: its share, less one slot
    always left to interactive requests."""
    share = max(1, int(concurrency * max_share))
    if share >= concurrency > 1:
        share = concurrency - 1
    return share


class BatchPace:
    def __init__(
        self,
        concurrency: int,
        max_share: float,
        busy_loop_lag_ms: float,
        gauge: Gauge | None = None,
    ) -> None:
        self.share = batch_share(concurrency, max_share)
        self.gauge = gauge
        self.lag = LoopLag(busy_loop_lag_ms)
        self.is_adaptive = busy_loop_lag_ms > 0
        # Start small: a worker joining a busy service ramps up rather than burst.
        self.cap = 1.0 if self.is_adaptive else float(self.share)
        self._interactive_at = -INTERACTIVE_RECENT_S
        self._cut_at = 0.0
        self._show()

    def _show(self) -> None:
        if self.gauge is not None:
            self.gauge.set(int(self.cap))

    def saw_interactive(self, now: float) -> None:
        self._interactive_at = now

    def room(self, free: int, held: int) -> int:
        """Batch lines the worker may start now, holding `held` and with `free` slots."""
        return max(0, min(free, int(self.cap) - held))

    def step(self, now: float) -> None:
        """One AIMD move of the cap."""
        if not self.is_adaptive:
            return
        is_interactive = now - self._interactive_at < INTERACTIVE_RECENT_S
        if is_interactive and self.lag.is_busy:
            if now - self._cut_at >= HOLD_AFTER_CUT_S:
                self.cap = max(1.0, self.cap / 2)
                self._cut_at = now
        else:
            self.cap = min(float(self.share), self.cap + 1)
        self._show()

    async def run(self) -> None:
        """Measure the loop's lag and move the cap, for as long as the worker runs."""
        if not self.is_adaptive:
            return
        lag = asyncio.create_task(self.lag.run(), name="loop lag")
        try:
            while True:
                await asyncio.sleep(TICK_S)
                self.step(time.monotonic())
        finally:
            lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lag
