"""A process gives memory back once a burst has passed (issue #22), and not under load."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.waiting import eventually
from workers.memory import MemoryReleaser

INTERVAL_S = 0.01


async def released(releaser: MemoryReleaser) -> bool:
    return releaser.releases > 0


@contextlib.asynccontextmanager
async def after_serving(requests: int) -> AsyncIterator[MemoryReleaser]:
    """A releaser that served `requests` (a burst is 3), its quiet loop running meanwhile."""
    releaser = MemoryReleaser(quiet_after_requests=3)
    for _ in range(requests):
        releaser.note_served()
    quiet = asyncio.create_task(releaser.run_when_quiet(INTERVAL_S))
    try:
        yield releaser
    finally:
        quiet.cancel()


async def test_a_burst_is_released_once_a_quiet_interval_follows() -> None:
    async with after_serving(3) as releaser:
        await eventually(lambda: released(releaser), timeout_s=5)
    assert releaser.releases == 1


async def test_fewer_requests_than_a_burst_are_not_worth_a_release() -> None:
    async with after_serving(1) as releaser:
        await asyncio.sleep(20 * INTERVAL_S)
    assert releaser.releases == 0


async def test_one_burst_is_released_once() -> None:
    async with after_serving(5) as releaser:
        await eventually(lambda: released(releaser), timeout_s=5)
        await asyncio.sleep(20 * INTERVAL_S)
    assert releaser.releases == 1
