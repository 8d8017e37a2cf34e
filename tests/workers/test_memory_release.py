"""A process gives memory back once a burst has passed (issue #22), and not under load."""

from __future__ import annotations

import asyncio

from tests.waiting import eventually
from workers.memory import MemoryReleaser

INTERVAL_S = 0.01


async def released(releaser: MemoryReleaser) -> bool:
    return releaser.releases > 0


async def test_a_burst_is_released_once_a_quiet_interval_follows() -> None:
    releaser = MemoryReleaser(quiet_after_requests=3)
    for _ in range(3):
        releaser.note_served()
    quiet = asyncio.create_task(releaser.run_when_quiet(INTERVAL_S))
    try:
        await eventually(lambda: released(releaser), timeout_s=5)
    finally:
        quiet.cancel()
    assert releaser.releases == 1


async def test_fewer_requests_than_a_burst_are_not_worth_a_release() -> None:
    releaser = MemoryReleaser(quiet_after_requests=3)
    releaser.note_served()
    quiet = asyncio.create_task(releaser.run_when_quiet(INTERVAL_S))
    await asyncio.sleep(20 * INTERVAL_S)
    quiet.cancel()
    assert releaser.releases == 0


async def test_one_burst_is_released_once() -> None:
    releaser = MemoryReleaser(quiet_after_requests=3)
    for _ in range(5):
        releaser.note_served()
    quiet = asyncio.create_task(releaser.run_when_quiet(INTERVAL_S))
    try:
        await eventually(lambda: released(releaser), timeout_s=5)
        await asyncio.sleep(20 * INTERVAL_S)
    finally:
        quiet.cancel()
    assert releaser.releases == 1
