"""Issue #17, management API: organizations, customers (end users) and budgets."""

from __future__ import annotations

from tests.broker.management.conftest import Api


async def test_organizations_keep_their_limits_in_a_budget_row(api: Api) -> None:
    org = await api.ok(
        "POST",
        "/organization/new",
        {
            "organization_id": "acme",
            "organization_alias": "Acme",
            "max_budget": 500,
            "models": ["gpt-test"],
        },
    )
    assert org["litellm_budget_table"]["max_budget"] == 500
    await api.ok("POST", "/team/new", {"team_id": "acme-ops", "organization_id": "acme"})
    key = await api.ok("POST", "/key/generate", {"team_id": "acme-ops"})
    assert key["organization_id"] == "acme"  # a team key joins the team's organization

    patched = await api.ok(
        "PATCH", "/organization/update", {"organization_id": "acme", "max_budget": 600}
    )
    assert patched["litellm_budget_table"]["max_budget"] == 600
    posted = await api.ok(
        "POST", "/organization/update", {"organization_id": "acme", "organization_alias": "ACME"}
    )
    assert posted["organization_alias"] == "ACME"
    assert (await api.ok("GET", "/organization/info", organization_id="acme"))["budget_id"] == org[
        "budget_id"
    ]
    assert [o["organization_id"] for o in await api.ok("GET", "/organization/list")] == ["acme"]
    deleted = await api.ok("DELETE", "/organization/delete", {"organization_ids": ["acme"]})
    assert [o["organization_id"] for o in deleted] == ["acme"]
    team = await api.ok("GET", "/team/info", team_id="acme-ops")
    assert team["team_info"]["organization_id"] is None  # unlinked, not deleted


async def test_customers_and_budgets(api: Api) -> None:
    budget = await api.ok(
        "POST", "/budget/new", {"budget_id": "tier-1", "max_budget": 1, "budget_duration": "1d"}
    )
    assert budget["budget_reset_at"] is not None
    status, answer = await api.post(
        "/customer/new", {"user_id": "c1", "budget_id": "tier-1", "max_budget": 2}
    )
    assert status == 400 and answer["error"]["param"] == "budget_id"
    customer = await api.ok("POST", "/customer/new", {"user_id": "c1", "budget_id": "tier-1"})
    assert customer["litellm_budget_table"]["max_budget"] == 1
    own = await api.ok(
        "POST", "/customer/new", {"user_id": "c2", "max_budget": 3, "allowed_model_region": "eu"}
    )
    assert own["litellm_budget_table"]["max_budget"] == 3
    assert (await api.ok("GET", "/customer/info", end_user_id="c2"))["allowed_model_region"] == "eu"
    blocked = await api.ok("POST", "/customer/update", {"user_id": "c2", "blocked": True})
    assert blocked["blocked"] is True
    assert len(await api.ok("GET", "/customer/list")) == 2
    assert await api.ok("POST", "/customer/delete", {"user_ids": ["c2"]}) == {
        "deleted_customers": ["c2"]
    }

    updated = await api.ok("POST", "/budget/update", {"budget_id": "tier-1", "max_budget": 9})
    assert updated["max_budget"] == 9
    assert [
        b["budget_id"] for b in await api.ok("POST", "/budget/info", {"budgets": ["tier-1"]})
    ] == ["tier-1"]
    listed = {b["budget_id"] for b in await api.ok("GET", "/budget/list")}
    assert "tier-1" in listed
    assert (await api.ok("POST", "/budget/delete", {"id": "tier-1"}))["budget_id"] == "tier-1"
    customer = await api.ok("GET", "/customer/info", end_user_id="c1")
    assert customer["budget_id"] is None  # the budget went; the customer stays
