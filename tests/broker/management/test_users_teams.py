"""Issue #17, management API: users, teams and members through HTTP, on both backends."""

from __future__ import annotations

from tests.broker.management.conftest import Api


async def test_users_are_created_with_a_key_read_updated_listed_and_deleted(api: Api) -> None:
    created = await api.ok(
        "POST",
        "/user/new",
        {
            "user_id": "ann",
            "user_email": "ann@example.com",
            "max_budget": 20,
            "models": ["gpt-test"],
            "key_alias": "ann-key",
        },
    )
    assert created["user_id"] == "ann" and created["user_role"] == "internal_user"
    assert created["key"].startswith("sk-")  # LiteLLM's auto_create_key
    quiet = await api.ok("POST", "/user/new", {"user_id": "bob", "auto_create_key": False})
    assert quiet["key"] is None

    info = await api.ok("GET", "/user/info", user_id="ann")
    assert info["user_info"]["remaining_budget"] == 20
    assert [k["key_alias"] for k in info["keys"]] == ["ann-key"]
    updated = await api.ok(
        "POST",
        "/user/update",
        {"user_email": "ann@example.com", "max_budget": 30, "user_role": "proxy_admin"},
    )
    assert updated["max_budget"] == 30 and updated["user_role"] == "proxy_admin"

    listed = await api.ok("GET", "/user/list", page_size=1)
    assert listed["total"] == 2 and len(listed["users"]) == 1 and listed["total_pages"] == 2

    assert await api.ok("POST", "/user/delete", {"user_ids": ["ann"]}) == {"deleted_users": ["ann"]}
    assert (await api.get("/user/info", user_id="ann"))[0] == 404
    assert (await api.get("/key/info", as_key=created["key"]))[0] == 401  # its key went too


async def test_teams_with_members_budgets_and_keys(api: Api) -> None:
    await api.ok("POST", "/user/new", {"user_id": "cat", "auto_create_key": False})
    team = await api.ok(
        "POST",
        "/team/new",
        {
            "team_id": "red",
            "team_alias": "Red",
            "max_budget": 100,
            "models": ["gpt-test"],
            "members_with_roles": [
                {"role": "admin", "user_id": "cat"},
                {"role": "user", "user_email": "dan@example.com"},
            ],
        },
    )
    roles = {(m["role"], m["user_email"] or m["user_id"]) for m in team["members_with_roles"]}
    assert roles == {("admin", "cat"), ("user", "dan@example.com")}

    added = await api.ok(
        "POST",
        "/team/member_add",
        {"team_id": "red", "member": [{"role": "user", "user_id": "eve"}], "max_budget_in_team": 5},
    )
    assert [m["user_id"] for m in added["updated_team_memberships"]] == ["eve"]
    changed = await api.ok(
        "POST",
        "/team/member_update",
        {"team_id": "red", "user_id": "eve", "role": "admin", "max_budget_in_team": 7},
    )
    assert (changed["role"], changed["max_budget_in_team"]) == ("admin", 7)

    key = await api.ok("POST", "/key/generate", {"team_id": "red", "key_alias": "red-svc"})
    info = await api.ok("GET", "/team/info", team_id="red")
    assert info["team_info"]["remaining_budget"] == 100
    assert [k["key_alias"] for k in info["keys"]] == ["red-svc"]
    budgets = {m["user_id"]: m["max_budget_in_team"] for m in info["team_memberships"]}
    assert budgets["eve"] == 7

    await api.ok("POST", "/team/member_delete", {"team_id": "red", "user_id": "eve"})
    updated = await api.ok("POST", "/team/update", {"team_id": "red", "tpm_limit": 1000})
    assert updated["tpm_limit"] == 1000 and len(updated["members_with_roles"]) == 2
    assert [t["team_id"] for t in await api.ok("GET", "/team/list")] == ["red"]

    assert await api.ok("POST", "/team/delete", {"team_ids": ["red"]}) == {"deleted_teams": ["red"]}
    assert (await api.get("/key/info", as_key=key["key"]))[0] == 401
    assert (await api.get("/team/info", team_id="red"))[0] == 404
    user = await api.ok("GET", "/user/info", user_id="cat")
    assert user["teams"] == []


async def test_unknown_ids_are_404_and_missing_ones_400(api: Api) -> None:
    assert (await api.get("/team/info", team_id="nope"))[0] == 404
    status, answer = await api.get("/team/info")
    assert status == 400 and answer["error"]["param"] == "team_id"
    status, answer = await api.post(
        "/team/member_add", {"team_id": "nope", "member": {"role": "user", "user_id": "x"}}
    )
    assert status == 404
    status, answer = await api.post("/user/delete", {"user_ids": []})
    assert status == 400 and answer["error"]["param"] == "user_ids"
