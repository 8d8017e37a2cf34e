"""A batch's front door killed (kill -9) mid-run and another taking it over, as the batch
process tests run it: a worker and the doomed front door on one config, the survivor on
another port started after the kill, and the check that an output holds each custom_id
exactly once."""

from __future__ import annotations

import contextlib
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.broker.processes import Process, free_port, switchboard, wait_ready
from tests.redis_helpers import REDIS_URL


@dataclass
class Handover:
    config: Path
    run: dict[str, Any]
    ports: tuple[int, int]
    worker: Process
    doomed: Process

    @property
    def urls(self) -> list[str]:
        """The doomed front door's, then the survivor's."""
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    async def kill_doomed(self) -> None:
        os.kill(self.doomed.pid, signal.SIGKILL)
        assert await self.doomed.wait() == -signal.SIGKILL

    @contextlib.asynccontextmanager
    async def survivor(self) -> AsyncIterator[Process]:
        """The second front door, ready (with the worker live) before it is yielded."""
        serve = ("serve", "--config", str(self.config), "--port", str(self.ports[1]))
        async with switchboard(*serve, name="survivor", **self.run) as survivor:
            await wait_ready(self.urls[1], workers=1, processes=(survivor, self.worker))
            yield survivor


@contextlib.asynccontextmanager
async def front_door_handover(config: Path, directory: Path) -> AsyncIterator[Handover]:
    """A worker and the doomed front door, both ready; stopped (SIGTERM) on the way out."""
    ports = free_port(), free_port()
    run: dict[str, Any] = {"directory": directory, "redis_url": REDIS_URL}
    serve = ("serve", "--config", str(config), "--port", str(ports[0]))
    async with (
        switchboard("worker", "--config", str(config), name="worker", **run) as worker,
        switchboard(*serve, name="doomed", **run) as doomed,
    ):
        handover = Handover(config, run, ports, worker, doomed)
        await wait_ready(handover.urls[0], workers=1, processes=(doomed, worker))
        yield handover


def assert_each_once(output: list[dict[str, Any]], custom_ids: Iterable[str]) -> None:
    """The output lines hold every one of `custom_ids`, each exactly once."""
    counted = Counter(line["custom_id"] for line in output)
    assert sorted(counted) == sorted(custom_ids)
    assert max(counted.values()) == 1
