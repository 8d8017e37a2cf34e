"""Database keys on the request path (issue #17): authenticated from the Redis mirror on
every front door, held to rpm, parallel requests and budgets decided in one Redis script,
so the limits are exact across front doors; refusals in OpenAI's shape with LiteLLM's
codes and headers."""

from __future__ import annotations

import asyncio

from tests.broker.harness import wait_until
from tests.broker.tenancy.conftest import Gateway


async def test_rpm_limit_admits_exactly_its_number_across_two_front_doors(
    gateway: Gateway,
) -> None:
    key = await gateway.new_key(rpm_limit=5)
    replies = await asyncio.gather(*(gateway.chat(key, door=i % 2) for i in range(12)))
    statuses = sorted(status for status, _, _ in replies)
    assert statuses == [200] * 5 + [429] * 7, replies
    refused = next(reply for reply in replies if reply[0] == 429)
    _, body, headers = refused
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert int(headers["Retry-After"]) >= 1
    assert headers["x-ratelimit-limit-requests"] == "5"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    admitted = next(reply for reply in replies if reply[0] == 200)
    assert admitted[2]["x-ratelimit-limit-requests"] == "5"
    assert "x-litellm-key-spend" in admitted[2]


async def test_blocked_key_is_refused_by_every_front_door_within_a_second(
    gateway: Gateway,
) -> None:
    key = await gateway.new_key()
    for door in (0, 1):
        status, body, _ = await gateway.chat(key, door=door)
        assert status == 200, body
    await gateway.api.ok("POST", "/key/block", {"key": key})

    async def refused_by_the_other() -> bool:
        status, body, _ = await gateway.chat(key, door=1)
        return status == 401 and body["error"]["code"] == "key_blocked"

    await wait_until(refused_by_the_other, timeout_s=1.0)
    await gateway.api.ok("POST", "/key/unblock", {"key": key})

    async def admitted_again() -> bool:
        return (await gateway.chat(key, door=1))[0] == 200

    await wait_until(admitted_again, timeout_s=1.0)


async def test_unknown_key_is_401_and_a_key_outside_its_models_403(gateway: Gateway) -> None:
    status, body, _ = await gateway.chat("sk-not-a-key-0000")
    assert status == 401, body
    key = await gateway.new_key(models=["embed-test"])
    status, body, _ = await gateway.chat(key)
    assert status == 403, body


async def test_budget_refuses_once_spent_and_names_the_budget(gateway: Gateway) -> None:
    key = await gateway.new_key(max_budget=0.0000001, budget_duration="1d")
    status, body, headers = await gateway.chat(key)
    assert status == 200, body
    assert float(headers["x-switchboard-cost-usd"]) > 0.0000001

    async def over_budget() -> bool:
        status, body, _ = await gateway.chat(key, door=1)
        return status == 422 and body["error"]["type"] == "budget_exceeded"

    await wait_until(over_budget, timeout_s=2.0)
    _, body, _ = await gateway.chat(key)
    message = body["error"]["message"]
    assert "Budget has been exceeded" in message and "resets at" in message
    assert body["error"]["code"] == "budget_exceeded"


async def test_max_parallel_requests_never_admits_one_more(gateway: Gateway) -> None:
    key = await gateway.new_key(max_parallel_requests=2)
    replies = await asyncio.gather(*(gateway.chat(key, door=i % 2, model="slow") for i in range(6)))
    statuses = sorted(status for status, _, _ in replies)
    assert statuses == [200] * 2 + [429] * 4, replies
    # Both leases went back with the answers.
    replies = await asyncio.gather(*(gateway.chat(key, door=i % 2) for i in range(2)))
    assert [status for status, _, _ in replies] == [200, 200]
