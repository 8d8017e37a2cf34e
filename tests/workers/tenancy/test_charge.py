"""The charge of work that skipped admission (native batch lines, issue #20) against a real
Redis: each line counted once however often it is charged, a missing counter seeded from
the database's spend, a period that ended starting again, and admission seeing the charge
(a budget spent by native lines refuses the next request)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from workers.errors import BudgetExceeded
from workers.redis_streams import Keys
from workers.tenancy import admission, charge, events
from workers.tenancy.admission import Scope, Ticket
from workers.tenancy.records import Limits

SCOPE = "key:abc"
FRONT = events.encode(
    events.FrontEvent(call_type="chat", api_key="abc", model="m", model_group="m", start_ms=1)
)


def line(custom_id: str, cost: float) -> tuple[str, str, events.WorkerEvent]:
    return custom_id, f"batchreq-{custom_id}", events.WorkerEvent(end_ms=2, spend=cost)


async def spent(redis: Any, keys: Keys) -> float:
    return float(await redis.hget(keys.tenancy.scope(SCOPE), "S"))


async def test_each_line_is_charged_once_and_ledgered_once(redis: Any, keys: Keys) -> None:
    scopes = [Scope(SCOPE, Limits(max_budget=10.0), seed_spend=1.0)]
    lines = [line("a", 0.25), line("b", 0.5)]
    assert await charge.charge_lines(redis, keys.tenancy, "batch_1", scopes, FRONT, lines) == 2
    # A runner that started over charges the same lines again: nothing changes.
    again = [*lines, line("c", 0.125)]
    assert await charge.charge_lines(redis, keys.tenancy, "batch_1", scopes, FRONT, again) == 1
    assert await spent(redis, keys) == pytest.approx(1.0 + 0.25 + 0.5 + 0.125)  # seeded at 1.0
    entries = await redis.xrange(keys.tenancy.ledger)
    assert [fields[b"id"] for _, fields in entries] == [b"batchreq-a", b"batchreq-b", b"batchreq-c"]
    assert float(entries[1][1][b"c"]) == pytest.approx(0.5)


async def test_a_charge_after_the_period_ended_starts_a_new_period(redis: Any, keys: Keys) -> None:
    scopes = [Scope(SCOPE, Limits(max_budget=10.0, budget_duration="1d"))]
    scope_key = keys.tenancy.scope(SCOPE)
    await redis.hset(scope_key, mapping={"S": 9.0, "E": int(time.time() * 1000) - 1})
    assert await charge.spent_scopes(redis, keys.tenancy, scopes) == []
    await charge.charge_lines(redis, keys.tenancy, "batch_1", scopes, FRONT, [line("a", 0.5)])
    assert await spent(redis, keys) == pytest.approx(0.5)
    assert int(await redis.hget(scope_key, "E")) > time.time() * 1000


async def test_admission_sees_what_native_lines_spent(redis: Any, keys: Keys) -> None:
    limits = Limits(max_budget=1.0)
    scopes = [Scope(SCOPE, limits)]
    await charge.charge_lines(redis, keys.tenancy, "batch_1", scopes, FRONT, [line("a", 1.5)])
    assert await charge.spent_scopes(redis, keys.tenancy, scopes) == [SCOPE]
    ticket = Ticket(scopes=tuple(scopes), tokens=10, cost_usd=0.01, event=FRONT)
    deadline_ms = int(time.time() * 1000) + 60_000
    call = admission.script_call(keys, "default", b"envelope", "req_1", ticket, deadline_ms)
    reply: Any = await redis.eval(admission.ADMIT, len(call[0]), *call[0], *call[1])
    with pytest.raises(BudgetExceeded):
        admission.outcome(reply, ticket)
