"""The admission and settlement scripts against a real Redis, on states a short test
cannot wait for: a window whose oldest buckets left it, a window idle past a minute, a
budget period that ended. And the settlement's guarantees: once per request, the lease
back, tpm corrected, one spend event."""

from __future__ import annotations

import time
from typing import Any

import pytest

from workers.errors import BudgetExceeded, RateLimited
from workers.redis_streams import Keys
from workers.tenancy import admission, events, settle
from workers.tenancy.admission import Admitted, Scope, Ticket
from workers.tenancy.records import Limits

SCOPE = "key:abc"
FRONT = events.encode(
    events.FrontEvent(call_type="chat", api_key="abc", model="m", model_group="m", start_ms=1)
)


def ticket(limits: Limits, tokens: int = 10, cost: float = 0.0) -> Ticket:
    return Ticket(scopes=(Scope(SCOPE, limits),), tokens=tokens, cost_usd=cost, event=FRONT)


async def admit(redis: Any, keys: Keys, request_id: str, t: Ticket) -> Admitted:
    call = admission.script_call(keys, "default", b"envelope", request_id, t, _in_a_minute())
    reply: Any = await redis.eval(admission.ADMIT, len(call[0]), *call[0], *call[1])
    return admission.outcome(reply, t)


async def settle_now(
    redis: Any, keys: Keys, request_id: str, *, tokens: int = 10, cost: float = 0.0
) -> Any:
    event = events.WorkerEvent(end_ms=1, prompt_tokens=tokens, spend=cost)
    script_keys, args = settle.script_call(keys.tenancy, request_id, (SCOPE,), event)
    return await redis.eval(settle.SETTLE, len(script_keys), *script_keys, *args)


def _in_a_minute() -> int:
    return int(time.time() * 1000) + 60_000


async def test_buckets_that_left_the_window_no_longer_count(redis: Any, keys: Keys) -> None:
    now = int(time.time())
    scope = window = keys.tenancy.scope(SCOPE)  # the buckets live beside the counters
    # 3 requests 70 s ago (gone from the window), 2 requests 30 s ago (still in it).
    await redis.hset(scope, mapping={"R": 5, "T": 50, "O": now - 70, "L": now - 30})
    await redis.hset(
        window,
        mapping={f"r{now - 70}": 3, f"t{now - 70}": 30, f"r{now - 30}": 2, f"t{now - 30}": 20},
    )
    await admit(redis, keys, "req_1", ticket(Limits(rpm=3)))  # 2 in the window: admitted
    with pytest.raises(RateLimited) as refused:
        await admit(redis, keys, "req_2", ticket(Limits(rpm=3)))
    assert refused.value.retry_after_s == 30.0  # when the requests of 30 s ago leave
    fields = await redis.hgetall(scope)
    assert f"r{now - 70}".encode() not in await redis.hgetall(window)
    assert int(fields[b"R"]) == 3 and int(fields[b"O"]) == now - 59


async def test_a_window_idle_past_a_minute_starts_empty(redis: Any, keys: Keys) -> None:
    now = int(time.time())
    scope = window = keys.tenancy.scope(SCOPE)
    await redis.hset(scope, mapping={"R": 9, "T": 90, "O": now - 200, "L": now - 100})
    await redis.hset(window, mapping={f"r{now - 100}": 9})
    admitted = await admit(redis, keys, "req_1", ticket(Limits(rpm=2)))
    assert admitted.headers["x-ratelimit-remaining-requests"] == "1"
    assert f"r{now - 100}".encode() not in await redis.hgetall(window)


async def test_tpm_refuses_past_the_limit_and_settlement_corrects_the_estimate(
    redis: Any, keys: Keys
) -> None:
    limits = Limits(tpm=100)
    await admit(redis, keys, "req_1", ticket(limits, tokens=80))
    with pytest.raises(RateLimited):
        await admit(redis, keys, "req_2", ticket(limits, tokens=30))
    await settle_now(redis, keys, "req_1", tokens=20)  # it used 20, not 80
    await admit(redis, keys, "req_2", ticket(limits, tokens=30))
    assert int(await redis.hget(keys.tenancy.scope(SCOPE), "T")) == 50


async def test_leases_come_back_once_per_request(redis: Any, keys: Keys) -> None:
    limits = Limits(parallel=1)
    await admit(redis, keys, "req_1", ticket(limits))
    with pytest.raises(RateLimited):
        await admit(redis, keys, "req_2", ticket(limits))
    assert await settle_now(redis, keys, "req_1") == []
    assert await settle_now(redis, keys, "req_1") is None  # settled already: no-op
    await admit(redis, keys, "req_2", ticket(limits))
    with pytest.raises(RateLimited):
        await admit(redis, keys, "req_3", ticket(limits))
    assert await redis.xlen(keys.tenancy.ledger) == 1  # one spend event for req_1


async def test_a_budget_reserves_settles_and_resets_with_its_period(redis: Any, keys: Keys) -> None:
    limits = Limits(max_budget=1.0, budget_duration="1d")
    await admit(redis, keys, "req_1", ticket(limits, cost=0.6))
    await admit(redis, keys, "req_2", ticket(limits, cost=0.6))  # 0 + 0.6 < 1: admitted
    with pytest.raises(BudgetExceeded):
        await admit(redis, keys, "req_3", ticket(limits, cost=0.1))  # 1.2 reserved
    await settle_now(redis, keys, "req_1", cost=0.1)
    await settle_now(redis, keys, "req_2", cost=0.2)
    scope = keys.tenancy.scope(SCOPE)
    state = await redis.hgetall(scope)
    assert float(state[b"S"]) == pytest.approx(0.3) and float(state[b"V"]) == pytest.approx(0)
    await redis.hset(scope, mapping={"S": 1.5, "E": int(time.time() * 1000) - 1})  # period over
    admitted = await admit(redis, keys, "req_4", ticket(limits, cost=0.1))
    assert admitted.headers["x-litellm-key-spend"] == "0"


async def test_a_soft_budget_crossing_is_reported_once(redis: Any, keys: Keys) -> None:
    limits = Limits(soft_budget=0.5)
    for request_id in ("req_1", "req_2", "req_3"):
        await admit(redis, keys, request_id, ticket(limits))
    assert await settle_now(redis, keys, "req_1", cost=0.3) == []
    assert await settle_now(redis, keys, "req_2", cost=0.3) == [SCOPE.encode()]
    assert await settle_now(redis, keys, "req_3", cost=0.3) == []


async def test_a_window_of_the_earlier_layout_starts_afresh(redis: Any, keys: Keys) -> None:
    """A scope written before the buckets moved into its hash (`o`/`l`, the buckets in a
    key of their own) has no `O`/`L`: its window starts empty once, rather than counting
    requests whose buckets it cannot see and so never expire."""
    now = int(time.time())
    await redis.hset(keys.tenancy.scope(SCOPE), mapping={"R": 9, "T": 90, "o": now - 5, "l": now})
    admitted = await admit(redis, keys, "req_1", ticket(Limits(rpm=2)))
    assert admitted.headers["x-ratelimit-remaining-requests"] == "1"
    fields = await redis.hgetall(keys.tenancy.scope(SCOPE))
    assert int(fields[b"R"]) == 1 and int(fields[b"O"]) == int(fields[b"L"])
