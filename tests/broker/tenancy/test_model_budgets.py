"""Per-model budgets (issue #17, LiteLLM's `model_max_budget`): keys, internal users,
teams and customers (end users) take them, each group with its own limit and, when the
entry names one, its own reset window; a request must fit under every one that applies
(the user's only for keys outside a team, as its overall budget), and the owner's other
models keep working."""

from __future__ import annotations

from tests.broker.harness import wait_until
from tests.broker.tenancy.conftest import Gateway
from tests.broker.tenancy.test_budgets import TINY, spent_then_refused


async def test_a_teams_model_budget_covers_its_keys_on_that_model_only(gateway: Gateway) -> None:
    await gateway.api.ok(
        "POST", "/team/new", {"team_id": "t-model", "model_max_budget": {"gpt-test": TINY}}
    )
    first = await gateway.new_key(team_id="t-model")
    second = await gateway.new_key(team_id="t-model")
    await spent_then_refused(gateway, first, "model budget of team `t-model:gpt-test`")
    status, body, _ = await gateway.chat(second)
    assert status == 422 and "model budget of team" in body["error"]["message"], body
    status, body, _ = await gateway.chat(second, model="groq-test")
    assert status == 200, body


async def test_a_users_model_budget_covers_its_personal_keys(gateway: Gateway) -> None:
    await gateway.api.ok(
        "POST",
        "/user/new",
        {
            "user_id": "bea",
            "auto_create_key": False,
            "model_max_budget": {"gpt-test": {"budget_limit": TINY}},
        },
    )
    await gateway.api.ok("POST", "/team/new", {"team_id": "t-bea"})
    personal = await gateway.new_key(user_id="bea")
    await spent_then_refused(gateway, personal, "model budget of user `bea:gpt-test`")
    # A team key of the same user: the team's rules, not the user's personal budget.
    await gateway.api.ok(
        "POST",
        "/team/member_add",
        {"team_id": "t-bea", "member": {"role": "user", "user_id": "bea"}},
    )
    in_team = await gateway.new_key(user_id="bea", team_id="t-bea")
    status, body, _ = await gateway.chat(in_team)
    assert status == 200, body


async def test_an_end_users_model_budget(gateway: Gateway) -> None:
    await gateway.api.ok(
        "POST", "/customer/new", {"user_id": "cust-m", "model_max_budget": {"gpt-test": TINY}}
    )
    key = await gateway.new_key()
    await spent_then_refused(gateway, key, "model budget of end user", user="cust-m")
    status, body, _ = await gateway.chat(key, user="cust-m", model="groq-test")
    assert status == 200, body


async def test_a_model_budget_resets_on_its_own_window(gateway: Gateway) -> None:
    window = {"gpt-test": {"budget_limit": TINY, "time_period": "2s"}}
    key = await gateway.new_key(model_max_budget=window)
    await spent_then_refused(gateway, key, "model budget of key")

    async def admitted_again() -> bool:
        return (await gateway.chat(key))[0] == 200

    await wait_until(admitted_again, timeout_s=10.0)
