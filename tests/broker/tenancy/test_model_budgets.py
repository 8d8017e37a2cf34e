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


async def test_team_member_model_max_budget_gives_each_member_its_own_cap(
    gateway: Gateway,
) -> None:
    """LiteLLM's team_member_model_max_budget: every member of the team gets the same
    per-model cap, counted apart for each member; /team/member_update overrides it for
    one member; a key without a user (a service key) has no member budget."""
    team = await gateway.api.ok(
        "POST",
        "/team/new",
        {
            "team_id": "t-mm",
            "team_member_model_max_budget": {"gpt-test": {"budget_limit": TINY}},
            "members_with_roles": [
                {"role": "user", "user_id": "mm-ann"},
                {"role": "user", "user_id": "mm-bob"},
                {"role": "user", "user_id": "mm-cy"},
            ],
        },
    )
    assert team["team_member_model_max_budget"] == {"gpt-test": {"budget_limit": TINY}}
    await gateway.api.ok(
        "POST",
        "/team/member_update",
        {"team_id": "t-mm", "user_id": "mm-cy", "model_max_budget": {"gpt-test": 1000.0}},
    )
    ann = await gateway.new_key(team_id="t-mm", user_id="mm-ann")
    bob = await gateway.new_key(team_id="t-mm", user_id="mm-bob")
    cy = await gateway.new_key(team_id="t-mm", user_id="mm-cy")
    service = await gateway.new_key(team_id="t-mm")
    await spent_then_refused(gateway, ann, "model budget of team member `t-mm/mm-ann:gpt-test`")
    # Each member's spend is its own; the other models stay open.
    status, body, _ = await gateway.chat(bob)
    assert status == 200, body
    status, body, _ = await gateway.chat(ann, model="groq-test")
    assert status == 200, body
    # The override and the service key: several requests, never refused.
    for key in (cy, service) * 3:
        status, body, _ = await gateway.chat(key, door=1)
        assert status == 200, body
    info = await gateway.api.ok("GET", "/team/info?team_id=t-mm")
    assert info["team_info"]["team_member_model_max_budget"] == {"gpt-test": {"budget_limit": TINY}}


async def test_a_team_update_changes_the_member_defaults_at_once(gateway: Gateway) -> None:
    await gateway.api.ok(
        "POST",
        "/team/new",
        {"team_id": "t-mu", "members_with_roles": [{"role": "user", "user_id": "mu-ann"}]},
    )
    ann = await gateway.new_key(team_id="t-mu", user_id="mu-ann")
    for _ in range(2):
        status, body, _ = await gateway.chat(ann)
        assert status == 200, body
    await gateway.api.ok(
        "POST", "/team/update", {"team_id": "t-mu", "team_member_model_max_budget": {"gpt-*": TINY}}
    )
    await spent_then_refused(gateway, ann, "model budget of team member `t-mu/mu-ann:gpt-*`")


async def test_team_member_model_budgets_are_validated_and_proxy_admin_only(
    gateway: Gateway,
) -> None:
    for bad in (
        {"gpt-test": {"budget_limit": "ten"}},
        {"gpt-test": {"time_period": "1d"}},
        {"gpt-test": {"budget_limit": 1, "time_period": "soon"}},
        {"gpt-test": {"budget_limit": 1, "rpm": 5}},
        {"gpt-test": -1},
    ):
        status, body = await gateway.api.post(
            "/team/new", {"team_id": "t-bad", "team_member_model_max_budget": bad}
        )
        assert status == 400, (bad, body)
        assert "team_member_model_max_budget" in str(body["error"]["param"]), body
    await gateway.api.ok(
        "POST",
        "/team/new",
        {"team_id": "t-adm", "members_with_roles": [{"role": "admin", "user_id": "adm-lead"}]},
    )
    lead = await gateway.new_key(team_id="t-adm", user_id="adm-lead")
    status, body = await gateway.api.post(
        "/team/update",
        {"team_id": "t-adm", "team_member_model_max_budget": {"gpt-test": 1000.0}},
        as_key=lead,
    )
    assert status == 403, body


async def test_the_most_specific_pattern_of_model_max_budget_counts(gateway: Gateway) -> None:
    """`*` patterns: an exact entry before any pattern, then the pattern with the most
    characters besides `*`; one counter per entry, shared by every model it matches."""
    key = await gateway.new_key(
        model_max_budget={"gpt-t*": TINY, "gpt-*": 1000.0, "*": {"budget_limit": 1000.0}}
    )
    await spent_then_refused(gateway, key, ":gpt-t*`")
    for _ in range(2):  # groq-test falls under `*`, far from its cap
        status, body, _ = await gateway.chat(key, model="groq-test")
        assert status == 200, body
    await gateway.api.ok(
        "POST", "/team/new", {"team_id": "t-star", "model_max_budget": {"*": TINY}}
    )
    team_key = await gateway.new_key(team_id="t-star")
    await spent_then_refused(gateway, team_key, "model budget of team")
    # `*` counts every model together: groq-test is refused on gpt-test's spend.
    status, body, _ = await gateway.chat(team_key, model="groq-test")
    assert status == 422, body
    exact = await gateway.new_key(model_max_budget={"gpt-test": 1000.0, "gpt-*": TINY})
    for _ in range(3):
        status, body, _ = await gateway.chat(exact)
        assert status == 200, body
