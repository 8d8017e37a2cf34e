"""How late this process's event loop runs its callbacks: a process whose CPU is taken
shows it here first. The batch lane backs off while it is late (issue #20), so batch lines
use the CPU interactive requests leave, not only their free slots."""

from __future__ import annotations

import asyncio

# Often enough to notice a burst, rarely enough to cost nothing.
INTERVAL_S = 0.02
# The smoothing of the lag (an exponentially weighted average): a few samples matter.
WEIGHT = 0.3


class LoopLag:
    def __init__(self, busy_ms: float) -> None:
        self.busy_ms = busy_ms
        self.lag_ms = 0.0

    @property
    def is_busy(self) -> bool:
        return self.lag_ms > self.busy_ms

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(INTERVAL_S)
            late_ms = max(0.0, (loop.time() - started - INTERVAL_S) * 1000)
            self.lag_ms += WEIGHT * (late_ms - self.lag_ms)

    async def wait_until_idle(self, max_wait_s: float) -> None:
        """Wait (at most `max_wait_s`) while the loop is late."""
        waited = 0.0
        while self.is_busy and waited < max_wait_s:
            await asyncio.sleep(INTERVAL_S)
            waited += INTERVAL_S
