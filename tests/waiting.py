"""Waiting in tests: for something the test can observe, never for a stretch of the clock.

A test that sleeps and then assumes its scenario moved on fails on a busy machine and wastes
time on an idle one. `eventually` polls the condition instead: it returns as soon as the
condition holds, and fails with an AssertionError naming what did not happen once a generous
bound passes. The bound is there to end a hung test, not to time anything.

Sleeps that are the scenario itself ("stay idle longer than the timeout") stay sleeps."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

TIMEOUT_S = 10.0
POLL_S = 0.02


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    *,
    what: str | None = None,
    timeout_s: float = TIMEOUT_S,
    poll_s: float = POLL_S,
) -> None:
    """Poll `condition` (a plain or an async function) until it returns true; fail after
    `timeout_s` saying `what` did not happen. An exception from `condition` ends the wait."""
    bound = asyncio.timeout(timeout_s)
    try:
        async with bound:
            while True:
                held = condition()
                if inspect.isawaitable(held):
                    held = await held
                if held:
                    return
                await asyncio.sleep(poll_s)
    except TimeoutError:
        if not bound.expired():
            raise  # the condition's own timeout, not ours
        raise AssertionError(_failure(condition, what, timeout_s)) from None


def eventually_sync(
    condition: Callable[[], bool],
    *,
    what: str | None = None,
    timeout_s: float = TIMEOUT_S,
    poll_s: float = POLL_S,
) -> None:
    """`eventually` for code outside an event loop (or before one starts)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(_failure(condition, what, timeout_s))
        time.sleep(poll_s)


def _failure(condition: Callable[[], object], what: str | None, timeout_s: float) -> str:
    name = what or getattr(condition, "__qualname__", repr(condition))
    return f"still waiting after {timeout_s:g} s for: {name}"


async def clear_of_minute_boundary(needed_s: float = 20.0) -> None:
    """Wait, if need be, until the clock minute has `needed_s` left.

    rpm and tpm count per clock minute, so a test that counts them must run inside one: one
    that starts at :58 sees its first requests in the minute before. Waiting here is the
    scenario's precondition, not a guess at how long something takes."""
    left = 60.0 - time.time() % 60.0
    if left < needed_s:
        await asyncio.sleep(left + 0.05)
