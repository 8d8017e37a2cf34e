"""`switchboard.batch_completion`: results in input order, a failure in its place without
sinking the rest, never more than `max_concurrency` calls upstream at once."""

from __future__ import annotations

import asyncio

import pytest

import switchboard
from tests.waiting import eventually
from workers import errors
from workers.testing.server import FakeUpstream
from workers.wire import ChatCompletion

KEY = "sk-test"


def conversations(count: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"question {i}"}] for i in range(count)]


async def test_results_come_in_input_order_with_failures_in_place(fake: FakeUpstream) -> None:
    messages = conversations(6)
    results = await switchboard.abatch_completion(
        "openai/gpt-4o-mini~echo",
        messages,
        max_concurrency=3,
        api_key=KEY,
        api_base=fake.base_url + "/v1",
    )
    assert [r.choices[0].message.content for r in results if isinstance(r, ChatCompletion)] == [
        f"question {i}" for i in range(6)
    ]
    failing = await switchboard.abatch_completion(
        "openai/gpt-4o-mini~status=400~fail_first=1",
        conversations(3),
        max_concurrency=1,
        api_key=KEY,
        api_base=fake.base_url + "/v1",
    )
    assert isinstance(failing[0], errors.InvalidRequest)
    assert all(isinstance(r, ChatCompletion) for r in failing[1:])


async def test_no_more_than_max_concurrency_run_at_once(fake: FakeUpstream) -> None:
    running = asyncio.create_task(
        switchboard.abatch_completion(
            "openai/gpt-4o-mini~latency=2",
            conversations(4),
            max_concurrency=2,
            api_key=KEY,
            api_base=fake.base_url + "/v1",
        )
    )
    await eventually(lambda: fake.request_count == 2, what="two calls upstream")
    # Both slots are taken for two seconds: the other calls wait for them.
    await asyncio.sleep(0.3)
    assert fake.request_count == 2
    results = await asyncio.wait_for(running, 30)
    assert all(isinstance(r, ChatCompletion) for r in results)
    assert fake.request_count == 4


def test_the_blocking_form_and_its_refusals() -> None:
    with FakeUpstream.in_thread() as fake:
        results = switchboard.batch_completion(
            "openai/gpt-4o-mini",
            conversations(2),
            api_key=KEY,
            api_base=fake.base_url + "/v1",
        )
    assert len(results) == 2 and all(isinstance(r, ChatCompletion) for r in results)
    with pytest.raises(errors.InvalidRequest):
        switchboard.batch_completion("openai/gpt-4o-mini", [], max_concurrency=0)
    with pytest.raises(errors.InvalidRequest):
        switchboard.batch_completion("openai/gpt-4o-mini", [], stream=True)
