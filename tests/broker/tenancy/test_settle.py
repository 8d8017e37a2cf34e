"""Settling what did not finish (issue #17): a stream its client left is charged what its
provider produced (not its reservation), and its lease goes back at once; a request left
before any worker read it is settled at no cost by its front door, at once, not at its
deadline; a completed request on an unpriced deployment costs nothing."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.broker.harness import wait_until
from tests.broker.tenancy.conftest import HELLO, Gateway
from workers.db import keys as db_keys
from workers.redis_streams import Keys

# priced-slow: 30 chunks, 0.1 s apart, $0.0001 an output token (tests/broker/tenancy).
RESERVED_USD = 100 * 0.0001  # max_tokens 100


async def _scope(redis: Redis, namespace: str, key: str, field: str) -> float:
    scope = Keys(namespace).tenancy.scope(f"key:{db_keys.hash_token(key)}")
    return float(await redis.hget(scope, field) or 0)  # type: ignore[misc]  # redis-py's union


async def _spend_rows(gateway: Gateway, key: str, count: int = 1) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    async def recorded() -> bool:
        rows[:] = await gateway.api.ok("GET", "/spend/logs", api_key=key)
        return len(rows) == count

    await wait_until(recorded, timeout_s=10.0)
    return rows


async def test_a_stream_left_mid_way_is_charged_what_it_produced(
    gateway: Gateway, redis: Redis, namespace: str
) -> None:
    """Charged its prompt and the completion so far (estimated), as a finished request
    would be: more than nothing (leaving early is no way past a budget), less than the
    reservation of max_tokens; its lease is back as soon as the cancellation lands."""
    key = await gateway.new_key(max_budget=1.0, max_parallel_requests=1)
    body = {"model": "priced-slow", "messages": HELLO, "stream": True, "max_tokens": 100}
    async with gateway.http.post(
        gateway.doors[0].url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
    ) as reply:
        assert reply.status == 200
        await reply.content.readline()  # the first event, then the client goes away

    async def settled() -> bool:
        return await _scope(redis, namespace, key, "S") > 0

    await wait_until(settled, timeout_s=15.0)
    assert await _scope(redis, namespace, key, "P") == 0  # the lease is back
    assert await _scope(redis, namespace, key, "V") == 0  # and the reservation
    charged = await _scope(redis, namespace, key, "S")
    assert 0 < charged < RESERVED_USD / 2, charged
    (row,) = await _spend_rows(gateway, key)
    assert row["status"] == "failure"
    assert row["spend"] == charged
    assert 0 < row["completion_tokens"] < 100, row
    # The lease is free: the next request is admitted.
    status, answer, _ = await gateway.chat(key, door=1)
    assert status == 200, answer


async def test_a_request_left_before_any_worker_read_it_is_released_at_once(
    gateway: Gateway, redis: Redis, namespace: str
) -> None:
    """No worker is running: the front door that saw its client leave settles it (lease
    and reservation back, a spend row at no cost) instead of its lease waiting for the
    request's deadline and the sweep."""
    key = await gateway.new_key(max_budget=1.0, max_parallel_requests=1)
    for worker in gateway.workers:
        await worker.stop()
    body = {"model": "priced", "messages": HELLO, "max_tokens": 100, "timeout": 600}
    try:
        await gateway.http.post(
            gateway.doors[0].url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=aiohttp.ClientTimeout(total=0.5),
        )
        raise AssertionError("no worker runs: the request cannot have been answered")
    except TimeoutError:
        pass
    assert await _scope(redis, namespace, key, "P") == 1  # held while queued

    async def released() -> bool:
        return await _scope(redis, namespace, key, "P") == 0

    await wait_until(released, timeout_s=5.0)  # the grace (0.5 s), then the cancellation
    assert await _scope(redis, namespace, key, "V") == 0
    assert await _scope(redis, namespace, key, "S") == 0
    (row,) = await _spend_rows(gateway, key)
    assert row["status"] == "failure" and row["spend"] == 0


async def test_a_wildcard_groups_request_reserves_and_settles_at_its_models_price(
    gateway: Gateway, redis: Redis, namespace: str
) -> None:
    """`openai/*` has no price of its own: the request for openai/gpt-4o is reserved and
    charged at gpt-4o's, not at $0 (which let such traffic spend past any budget)."""
    key = await gateway.new_key(max_budget=1.0)
    status, answer, headers = await gateway.chat(key, model="openai/gpt-4o", max_tokens=50)
    assert status == 200, answer
    assert float(headers["x-switchboard-cost-usd"]) > 0
    (row,) = await _spend_rows(gateway, key)
    assert row["spend"] == pytest.approx(float(headers["x-switchboard-cost-usd"]))
    assert row["spend"] == pytest.approx(await _scope(redis, namespace, key, "S"))
    tenancy = gateway.doors[0].front.tenancy
    ticket = await tenancy.ticket(
        await _caller(gateway, key),
        call_type="chat",
        model="openai/gpt-4o",
        group="openai/*",
        body_bytes=400,
        max_tokens=50,
    )
    assert ticket is not None and ticket.cost_usd > 50 * 1e-5 * 0.99  # gpt-4o's output


async def _caller(gateway: Gateway, key: str) -> Any:
    """The front door's caller for `key`, as a request carrying it is authenticated."""
    tenancy = gateway.doors[0].front.tenancy
    found = await tenancy.caller_for_token(db_keys.hash_token(key))
    assert found is not None
    return found
