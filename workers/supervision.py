"""An owner for a process's background tasks, so that none can end unnoticed (issue #14).

A worker's heartbeats, cancellation listener and claim loop, and a front door's reply
listener, run for the life of their process. Each catches the Redis errors it can outlive;
if one still ends (a bug, an error nobody foresaw, a cancellation from outside), a task
nobody awaits would die in silence, and the process would go on consuming while invisible
to `live_workers` or deaf to cancellations. Started here, its end is logged and, by its
policy, it is started again or its owner learns that it died and stops.

    async with Supervisor("worker w1", log) as tasks:
        tasks.start("heartbeats", heartbeats.run)                   # its end stops the owner
        tasks.start("listener", listen, restart_after_s=0.5)        # started again instead
        tasks.spawn(release(slot), "release")                       # a short task, owned
        died = await tasks.wait()                                   # the first death
    # leaving the block cancels the long-lived tasks and waits for the short ones

The owner decides what a death means (a worker drains and exits non-zero, so that `up` or
the orchestrator starts it again); `TaskDied` names the task and carries its exception.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any

Loop = Callable[[], Coroutine[Any, Any, None]]

# How long `aclose` waits for short tasks (`spawn`) before it cancels them.
SPAWNED_GRACE_S = 5.0


class TaskDied(Exception):
    """A supervised task ended while its owner still needed it."""

    def __init__(self, owner: str, name: str, cause: BaseException | None) -> None:
        how = "returned" if cause is None else f"failed: {cause!r}"
        super().__init__(f"{owner}: background task {name!r} ended ({how})")
        self.owner = owner
        self.name = name
        self.cause = cause


class Supervisor:
    """Runs named long-lived tasks and short owned ones; reports the first death."""

    def __init__(self, owner: str, log: logging.Logger) -> None:
        self.owner = owner
        self.log = log
        self.death: TaskDied | None = None
        self._died = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping: set[str] = set()
        self._spawned: set[asyncio.Task[Any]] = set()
        self._is_closing = False

    # ------------------------------------------------------------------ long-lived tasks

    def start(self, name: str, run: Loop, *, restart_after_s: float | None = None) -> None:
        """Run `run()` for as long as this supervisor is open. If it ends on its own (returns,
        raises, or is cancelled by anyone but this supervisor): with `restart_after_s`, an
        exception is logged and `run()` started again after that pause; without it (or if it
        returned, or was cancelled) it is logged and becomes this supervisor's death."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is already running")
        task = asyncio.create_task(self._keep(name, run, restart_after_s), name=name)
        self._tasks[name] = task
        task.add_done_callback(self._ended)

    async def _keep(self, name: str, run: Loop, restart_after_s: float | None) -> None:
        while True:
            try:
                await run()
                return
            except Exception:
                if restart_after_s is None:
                    raise
                self.log.exception(
                    "%s: background task %r failed; starting it again in %gs",
                    self.owner,
                    name,
                    restart_after_s,
                )
            await asyncio.sleep(restart_after_s)

    def _ended(self, task: asyncio.Task[None]) -> None:
        name = task.get_name()
        self._tasks.pop(name, None)
        if self._is_closing or name in self._stopping:
            self._stopping.discard(name)
            if not task.cancelled() and task.exception() is not None:
                self.log.warning("%s: %r failed while stopping: %r", self.owner, name, task)
            return
        cause: BaseException | None
        if task.cancelled():
            cause = asyncio.CancelledError(f"{name} was cancelled from outside its owner")
        else:
            cause = task.exception()
        died = TaskDied(self.owner, name, cause)
        self.log.error("%s", died, exc_info=cause)
        if self.death is None:
            self.death = died
            self._died.set()

    async def wait(self) -> TaskDied:
        """Wait until a task dies for good; its `TaskDied` (the first, if several did)."""
        await self._died.wait()
        assert self.death is not None
        return self.death

    def check(self) -> None:
        """Raise the first death, if there was one."""
        if self.death is not None:
            raise self.death

    async def stop(self, name: str) -> None:
        """End one long-lived task now, before the rest (its end is no death)."""
        task = self._tasks.get(name)
        if task is None:
            return
        self._stopping.add(name)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    @property
    def running(self) -> list[str]:
        """The names of the long-lived tasks still running."""
        return list(self._tasks)

    # ------------------------------------------------------------------ short tasks

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a short task this supervisor owns: its failure is logged (it is no death),
        and closing waits for it (up to SPAWNED_GRACE_S, then cancels it)."""
        task = asyncio.create_task(coro, name=name)
        self._spawned.add(task)
        task.add_done_callback(self._spawned_ended)
        return task

    def _spawned_ended(self, task: asyncio.Task[Any]) -> None:
        self._spawned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.log.error(
                "%s: task %r failed", self.owner, task.get_name(), exc_info=task.exception()
            )

    # ------------------------------------------------------------------ closing

    async def aclose(self, spawned_grace_s: float = SPAWNED_GRACE_S) -> None:
        """Cancel the long-lived tasks and wait for them; give the short ones a grace."""
        self._is_closing = True
        long_lived = list(self._tasks.values())
        for task in long_lived:
            task.cancel()
        await asyncio.gather(*long_lived, return_exceptions=True)
        if self._spawned:
            spawned = list(self._spawned)
            _done, late = await asyncio.wait(spawned, timeout=spawned_grace_s)
            for task in late:
                task.cancel()
            await asyncio.gather(*spawned, return_exceptions=True)

    async def __aenter__(self) -> Supervisor:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
