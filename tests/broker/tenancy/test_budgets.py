"""Budgets on the request path (issue #17): every scope a request falls under (key,
per-model, team, team member, end user) refuses once spent, with LiteLLM's
`budget_exceeded` naming it; tpm counts tokens; periods reset by themselves; a soft budget
crossed is counted for the alert; expired keys are refused."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio import Redis

from tests.broker.harness import wait_until
from tests.broker.tenancy.conftest import MASTER, Gateway
from tests.scrape import Scrape
from workers.db import keys as db_keys
from workers.redis_streams import Keys

TINY = 0.0000001


async def spent_then_refused(gateway: Gateway, key: str, words: str, **body: Any) -> None:
    status, answer, _ = await gateway.chat(key, **body)
    assert status == 200, answer
    last: dict[str, object] = {}

    async def refused() -> bool:
        status, answer, _ = await gateway.chat(key, door=1, **body)
        last.update(answer)
        return status == 422

    await wait_until(refused, timeout_s=3.0)
    error = last["error"]
    assert isinstance(error, dict)
    assert error["type"] == "budget_exceeded", error
    assert words in error["message"], error


async def test_a_model_budget_refuses_only_that_model(gateway: Gateway) -> None:
    key = await gateway.new_key(model_max_budget={"gpt-test": TINY})
    await spent_then_refused(gateway, key, "model budget of key")
    status, body, _ = await gateway.chat(key, model="groq-test")
    assert status == 200, body


async def test_a_team_budget_covers_all_its_keys(gateway: Gateway) -> None:
    await gateway.api.ok("POST", "/team/new", {"team_id": "t-budget", "max_budget": TINY})
    first = await gateway.new_key(team_id="t-budget")
    second = await gateway.new_key(team_id="t-budget")
    await spent_then_refused(gateway, first, "team `t-budget`")
    status, body, _ = await gateway.chat(second)
    assert status == 422 and "team `t-budget`" in body["error"]["message"], body


async def test_a_members_budget_in_its_team(gateway: Gateway) -> None:
    await gateway.api.ok("POST", "/team/new", {"team_id": "t-members"})
    await gateway.api.ok(
        "POST",
        "/team/member_add",
        {
            "team_id": "t-members",
            "member": {"role": "user", "user_id": "ann"},
            "max_budget_in_team": TINY,
        },
    )
    key = await gateway.new_key(team_id="t-members", user_id="ann")
    await spent_then_refused(gateway, key, "team member `t-members/ann`")


async def test_an_end_users_budget_follows_the_user_field(gateway: Gateway) -> None:
    await gateway.api.ok("POST", "/customer/new", {"user_id": "cust-1", "max_budget": TINY})
    key = await gateway.new_key()
    await spent_then_refused(gateway, key, "end user `cust-1`", user="cust-1")
    status, body, _ = await gateway.chat(key, user="cust-2")
    assert status == 200, body


async def test_tpm_counts_tokens_in_the_window(gateway: Gateway) -> None:
    key = await gateway.new_key(tpm_limit=60)
    status, body, headers = await gateway.chat(key, max_tokens=5)
    assert status == 200, body
    assert headers["x-ratelimit-limit-tokens"] == "60"

    async def refused() -> bool:
        status, body, headers = await gateway.chat(key, door=1, max_tokens=5)
        return status == 429 and headers.get("x-ratelimit-remaining-tokens") == "0"

    await wait_until(refused, timeout_s=3.0)


async def test_a_budget_period_resets_by_itself(gateway: Gateway) -> None:
    key = await gateway.new_key(max_budget=TINY, budget_duration="2s")
    await spent_then_refused(gateway, key, "resets at")

    async def admitted_again() -> bool:
        return (await gateway.chat(key))[0] == 200

    await wait_until(admitted_again, timeout_s=10.0)


async def test_a_teams_spend_resets_when_no_request_arrives(gateway: Gateway) -> None:
    await gateway.api.ok("POST", "/team/new", {"team_id": "t-reset", "budget_duration": "1s"})
    key = await gateway.new_key(team_id="t-reset")
    assert (await gateway.chat(key))[0] == 200

    async def recorded() -> bool:
        info = await gateway.api.ok("GET", "/team/info", team_id="t-reset")
        return float(info["team_info"]["spend"]) > 0

    await wait_until(recorded, timeout_s=10.0)

    async def reset() -> bool:
        info = await gateway.api.ok("GET", "/team/info", team_id="t-reset")
        return float(info["team_info"]["spend"]) == 0

    await wait_until(reset, timeout_s=15.0)


async def test_a_soft_budget_crossed_is_counted_for_the_alert(gateway: Gateway) -> None:
    key = await gateway.new_key(soft_budget=TINY)
    assert (await gateway.chat(key))[0] == 200
    headers = {"Authorization": f"Bearer {MASTER}"}

    async def counted() -> bool:
        total = 0.0
        for door in gateway.doors:
            async with gateway.http.get(door.url + "/metrics", headers=headers) as response:
                scrape = Scrape(await response.text())
            total += scrape.get("switchboard_soft_budget_crossed_total", scope="key") or 0.0
        return total == 1.0

    await wait_until(counted, timeout_s=10.0)


async def test_an_expired_key_is_refused(gateway: Gateway) -> None:
    key = await gateway.new_key(duration="1s")
    assert (await gateway.chat(key))[0] == 200
    await asyncio.sleep(1.1)  # the scenario: the key's lifetime passes
    status, body, _ = await gateway.chat(key)
    assert status == 401 and body["error"]["code"] == "key_expired", body


async def test_a_budget_under_50_concurrent_requests_overspends_by_at_most_one_reservation(
    gateway: Gateway, redis: Redis, namespace: str
) -> None:
    """$0.01 and 50 concurrent requests, wave after wave, across both front doors: each
    reserves 20 output tokens at $0.0001 ($0.002) and costs less; admission only while
    spent + reserved is under the budget, so the overspend stays under one reservation."""
    budget, reservation = 0.01, 20 * 0.0001
    key = await gateway.new_key(max_budget=budget)
    admitted = 0
    for _ in range(4):
        replies = await asyncio.gather(
            *(gateway.chat(key, door=i % 2, model="priced", max_tokens=20) for i in range(50))
        )
        statuses = [status for status, _, _ in replies]
        assert set(statuses) <= {200, 422}, statuses
        admitted += statuses.count(200)
    assert 0 < admitted < 200
    scope = Keys(namespace).tenancy.scope(f"key:{db_keys.hash_token(key)}")
    spent = float(await redis.hget(scope, "S") or 0)  # type: ignore[misc]  # redis-py's union
    assert budget <= spent <= budget + reservation, (spent, admitted)


@pytest.mark.parametrize(
    "gateway",
    [
        "litellm_settings:\n  max_budget: 0.0000001\n  budget_duration: 1d\n",
        "  max_budget: 0.0000001\n  budget_duration: 1d\n",  # under general_settings
    ],
    indirect=True,
    ids=["litellm_settings", "general_settings"],
)
async def test_the_proxy_budget_covers_every_key_and_the_master_key(gateway: Gateway) -> None:
    first = await gateway.new_key()
    await spent_then_refused(gateway, first, "the proxy")
    status, body, _ = await gateway.chat(MASTER)
    assert status == 422 and "the proxy" in body["error"]["message"], body


@pytest.mark.parametrize(
    "gateway", ["litellm_settings:\n  max_end_user_budget: 0.0000001\n"], indirect=True
)
async def test_max_end_user_budget_holds_each_end_user(gateway: Gateway) -> None:
    key = await gateway.new_key()
    await spent_then_refused(gateway, key, "end user `someone`", user="someone")
    status, body, _ = await gateway.chat(key, user="someone-else")
    assert status == 200, body


async def test_an_admin_setting_the_spend_reaches_the_counter(gateway: Gateway) -> None:
    key = await gateway.new_key(max_budget=TINY)
    await spent_then_refused(gateway, key, "Budget has been exceeded")

    async def recorded() -> bool:
        info = await gateway.api.ok("GET", "/key/info", key=key)
        return float(info["info"]["spend"]) > 0

    await wait_until(recorded, timeout_s=10.0)  # the ledger wrote it
    await gateway.api.ok("POST", "/key/update", {"key": key, "spend": 0})

    async def admitted_again() -> bool:
        return (await gateway.chat(key, door=1))[0] == 200

    await wait_until(admitted_again, timeout_s=1.0)
