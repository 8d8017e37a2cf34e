"""No extra round trip for a database key (issue #17's benchmark clause, counted rather
than timed): a request with a database key makes exactly as many Redis round trips on its
path as one with the master key. Front doors and the worker share this process, so every
round trip either makes is seen; requests go one at a time, so each is the one's."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from tests.broker.tenancy.conftest import MASTER, Gateway


class Trips:
    """Round trips (pipelines sent, single commands), by the task that made them."""

    def __init__(self) -> None:
        self.tasks: list[str] = []

    def note(self) -> None:
        task = asyncio.current_task()
        self.tasks.append(task.get_name() if task is not None else "")

    def of_requests(self) -> int:
        """Those made by request handlers, their jobs and the write batches they started
        (tasks without a name of their own); the background loops (heartbeats, monitors,
        the ledger) have names. The worker's XREADGROUP (the `consume` loop, one read per
        request here) is the same for every key and left out."""
        return sum(1 for name in self.tasks if name.startswith(("Task-", "req_")))


@pytest.fixture
def trips(monkeypatch: pytest.MonkeyPatch) -> Trips:
    seen = Trips()
    execute, command = Pipeline.execute, Redis.execute_command

    async def counted_execute(self: Pipeline, raise_on_error: bool = True) -> Any:
        seen.note()
        return await execute(self, raise_on_error)

    async def counted_command(self: Redis, *args: Any, **options: Any) -> Any:
        seen.note()
        return await command(self, *args, **options)

    monkeypatch.setattr(Pipeline, "execute", counted_execute)
    monkeypatch.setattr(Redis, "execute_command", counted_command)
    return seen


async def _trips_of(gateway: Gateway, trips: Trips, key: str, count: int) -> list[int]:
    """The round trips of each of `count` requests in a row with `key`."""
    per_request = []
    for _ in range(count):
        trips.tasks.clear()
        status, body, _ = await gateway.chat(key)
        assert status == 200, body
        await asyncio.sleep(0.05)  # the worker's ack and settlement are done by now
        per_request.append(trips.of_requests())
    return per_request


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_database_key_makes_no_more_round_trips_than_the_master_key(
    gateway: Gateway, trips: Trips
) -> None:
    await gateway.api.ok("POST", "/team/new", {"team_id": "t-trips", "max_budget": 100})
    key = await gateway.new_key(
        team_id="t-trips", max_budget=100, rpm_limit=10_000, max_parallel_requests=100
    )
    await _trips_of(gateway, trips, MASTER, 1)  # loads the admission script, once
    first = (await _trips_of(gateway, trips, key, 1))[0]
    master = await _trips_of(gateway, trips, MASTER, 5)
    database = await _trips_of(gateway, trips, key, 5)
    assert master == database, (master, database)
    # The front door's first request with a key reads it, then its owners, from the
    # mirror (two MGETs); later ones use its copy (re-read after 30 s, or a change).
    assert first == database[0] + 2, (first, database)
