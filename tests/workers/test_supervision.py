"""The owner of background tasks (workers/supervision.py): a task that ends while needed is a
death its owner hears of, unless its policy starts it again; stopping and closing are not."""

from __future__ import annotations

import asyncio
import logging

import pytest

from workers.supervision import Supervisor, TaskDied

log = logging.getLogger("test.supervision")


async def forever() -> None:
    await asyncio.Event().wait()


async def test_a_task_that_fails_is_the_owners_death_with_its_name_and_cause() -> None:
    async def broken() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    async with Supervisor("owner", log) as tasks:
        tasks.start("steady", forever)
        tasks.start("broken", broken)
        async with asyncio.timeout(5):
            died = await tasks.wait()
        assert (died.name, died.owner) == ("broken", "owner")
        assert isinstance(died.cause, ValueError)
        with pytest.raises(TaskDied):
            tasks.check()
        assert tasks.running == ["steady"]
    assert tasks.running == []


async def test_a_task_that_returns_or_is_cancelled_from_outside_is_a_death() -> None:
    async def done() -> None:
        return

    async with Supervisor("owner", log) as tasks:
        tasks.start("done", done)
        async with asyncio.timeout(5):
            died = await tasks.wait()
        assert died.name == "done" and died.cause is None

    async with Supervisor("owner", log) as tasks:
        tasks.start("victim", forever)
        await asyncio.sleep(0)
        (victim,) = [t for t in asyncio.all_tasks() if t.get_name() == "victim"]
        victim.cancel()
        async with asyncio.timeout(5):
            died = await tasks.wait()
        assert died.name == "victim"
        assert isinstance(died.cause, asyncio.CancelledError)


async def test_a_restarting_task_is_started_again_after_a_failure() -> None:
    runs = 0
    steady = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise ConnectionError("not yet")
        steady.set()
        await forever()

    async with Supervisor("owner", log) as tasks:
        tasks.start("flaky", flaky, restart_after_s=0)
        async with asyncio.timeout(5):
            await steady.wait()
        assert runs == 3
        assert tasks.death is None
        tasks.check()


async def test_stopping_one_task_or_closing_is_no_death() -> None:
    tasks = Supervisor("owner", log)
    tasks.start("first", forever)
    tasks.start("second", forever)
    await tasks.stop("first")
    assert tasks.running == ["second"]
    await tasks.aclose()
    assert tasks.running == [] and tasks.death is None


async def test_a_short_task_is_owned_a_failure_logged_and_closing_waits_for_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    finished = asyncio.Event()

    async def short() -> None:
        await asyncio.sleep(0.05)
        finished.set()

    async def failing() -> None:
        raise RuntimeError("short task failed")

    tasks = Supervisor("owner", log)
    with caplog.at_level(logging.ERROR, logger="test.supervision"):
        tasks.spawn(failing(), "failing")
        tasks.spawn(short(), "short")
        await tasks.aclose()
    assert finished.is_set()
    assert tasks.death is None
    assert "short task failed" in caplog.text
