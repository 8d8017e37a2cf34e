"""The shared wait: returns once its condition holds, and a wait that never ends fails
saying what it waited for."""

from __future__ import annotations

import asyncio

import pytest

from tests.waiting import eventually, eventually_sync


async def test_eventually_returns_once_a_plain_or_an_async_condition_holds() -> None:
    flag = asyncio.Event()
    asyncio.get_running_loop().call_soon(flag.set)
    await eventually(flag.is_set, what="the flag")

    asked = 0

    async def third_time() -> bool:
        nonlocal asked
        asked += 1
        return asked == 3

    await eventually(third_time, poll_s=0)
    assert asked == 3


async def test_eventually_fails_naming_what_did_not_happen() -> None:
    with pytest.raises(AssertionError, match="still waiting after 0.05 s for: the reply"):
        await eventually(lambda: False, what="the reply", timeout_s=0.05)


async def test_without_a_description_the_condition_is_named() -> None:
    def nothing_yet() -> bool:
        return False

    with pytest.raises(AssertionError, match=r"nothing_yet$"):
        await eventually(nothing_yet, timeout_s=0.05)


async def test_an_error_in_the_condition_ends_the_wait_as_itself() -> None:
    async def broken() -> bool:
        raise TimeoutError("the condition's own")

    with pytest.raises(TimeoutError, match="the condition's own"):
        await eventually(broken, timeout_s=5)


def test_eventually_sync_waits_and_fails_the_same_way() -> None:
    answers = iter([False, False, True])
    eventually_sync(lambda: next(answers), poll_s=0)
    with pytest.raises(AssertionError, match="still waiting after 0.05 s for: Redis"):
        eventually_sync(lambda: False, what="Redis", timeout_s=0.05, poll_s=0.01)
