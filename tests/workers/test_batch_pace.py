"""The worker's batch pace (issue #20): at most its share of slots, less one for
interactive requests; a cap that halves while interactive requests run on a late loop and
grows a line a tick otherwise."""

from __future__ import annotations

import time

from workers.runtime.batch_pace import HOLD_AFTER_CUT_S, BatchPace, batch_share


def test_the_share_always_leaves_a_slot_to_interactive_requests() -> None:
    assert batch_share(256, 0.75) == 192
    assert batch_share(4, 1.0) == 3
    assert batch_share(1, 1.0) == 1  # a one-slot worker still drains batches
    assert batch_share(10, 0.01) == 1


def test_the_cap_grows_a_line_a_tick_up_to_the_share_without_interactive_traffic() -> None:
    pace = BatchPace(8, 0.5, busy_loop_lag_ms=5.0)
    pace.lag.lag_ms = 100.0  # late, but nothing interactive is about: no reason to yield
    assert pace.room(free=8, held=0) == 1  # it starts small
    for tick in range(10):
        pace.step(float(tick))
    assert pace.cap == 4.0
    assert pace.room(free=8, held=1) == 3
    assert pace.room(free=2, held=1) == 2  # never more than the free slots


def test_a_late_loop_with_interactive_traffic_halves_the_cap_once_per_hold() -> None:
    pace = BatchPace(256, 0.75, busy_loop_lag_ms=5.0)
    pace.cap = 64.0
    pace.lag.lag_ms = 20.0
    now = 1000.0
    pace.saw_interactive(now)
    pace.step(now)
    assert pace.cap == 32.0
    pace.step(now + HOLD_AFTER_CUT_S / 2)  # the cut has not shown yet: no second one
    assert pace.cap == 32.0
    now += HOLD_AFTER_CUT_S + 0.01
    pace.step(now)
    assert pace.cap == 16.0
    for _ in range(20):
        now += HOLD_AFTER_CUT_S + 0.01
        pace.saw_interactive(now)
        pace.step(now)
    assert pace.cap == 1.0  # batches trickle on, never stall
    pace.lag.lag_ms = 1.0  # on time again: additive increase
    pace.step(now + 0.1)
    assert pace.cap == 2.0
    pace.lag.lag_ms = 20.0  # late, but the interactive traffic is gone: no reason to yield
    pace.step(now + 10)
    assert pace.cap == 3.0


def test_without_a_lag_threshold_the_cap_is_the_whole_share() -> None:
    pace = BatchPace(16, 0.5, busy_loop_lag_ms=0.0)
    pace.saw_interactive(time.monotonic())
    pace.lag.lag_ms = 1000.0
    pace.step(time.monotonic())
    assert pace.room(free=16, held=0) == 8
