"""Issue #17, roles: who may call which management endpoint (docs/tenancy.md)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from tests.broker.management.conftest import STATIC, Api
from workers.db.engine import Database
from workers.db.rows import now
from workers.db.tables import api_keys


async def user_key(api: Api, user_id: str, role: str = "internal_user") -> str:
    created = await api.ok("POST", "/user/new", {"user_id": user_id, "user_role": role})
    return str(created["key"])


async def test_keys_from_the_config_and_unknown_keys_may_not_manage(api: Api) -> None:
    status, answer = await api.get("/key/list", as_key=STATIC)
    assert status == 403 and answer["error"]["code"] == "management_forbidden"
    status, answer = await api.get("/key/list", as_key="sk-not-a-key-at-all")
    assert status == 401 and answer["error"]["type"] == "authentication_error"
    status, answer = await api.get("/key/list", as_key=None)
    assert status == 401 and answer["error"]["code"] == "missing_api_key"


async def test_an_internal_user_manages_its_own_keys_only(api: Api) -> None:
    ann = await user_key(api, "ann")
    bob = await user_key(api, "bob")
    own = await api.post("/key/generate", {"key_alias": "ann-2"}, as_key=ann)
    assert own[0] == 200 and own[1]["user_id"] == "ann"
    status, _ = await api.post("/key/generate", {"user_id": "bob"}, as_key=ann)
    assert status == 403
    status, _ = await api.post("/key/generate", {"spend": 0}, as_key=ann)
    assert status == 403
    status, listed = await api.get("/key/list", as_key=ann)
    assert status == 200 and listed["total_count"] == 2  # its auto key and ann-2
    status, _ = await api.post("/key/block", {"key": "ann-2"}, as_key=bob)
    assert status == 403
    assert (await api.post("/key/block", {"key": "ann-2"}, as_key=ann))[0] == 200
    for path in ("/user/list", "/budget/list", "/organization/list", "/audit/logs"):
        assert (await api.get(path, as_key=ann))[0] == 403, path
    assert (await api.get("/user/info", as_key=ann, user_id="bob"))[0] == 403
    assert (await api.get("/user/info", as_key=ann))[1]["user_id"] == "ann"
    assert (await api.post("/team/new", {"team_id": "x"}, as_key=ann))[0] == 403


async def test_a_team_admin_manages_its_team_but_not_its_cap(api: Api) -> None:
    lead = await user_key(api, "lead")
    other = await user_key(api, "other")
    await api.ok(
        "POST",
        "/team/new",
        {
            "team_id": "blue",
            "max_budget": 10,
            "members_with_roles": [{"role": "admin", "user_id": "lead"}],
        },
    )
    await api.ok("POST", "/team/new", {"team_id": "green"})
    status, created = await api.post(
        "/key/generate", {"team_id": "blue", "max_budget": 2}, as_key=lead
    )
    assert status == 200, created
    assert (await api.post("/key/update", {"key": created["key"], "max_budget": 3}, as_key=lead))[
        0
    ] == 200
    assert (await api.post("/key/generate", {"team_id": "green"}, as_key=lead))[0] == 403
    member = {
        "team_id": "blue",
        "member": {"role": "user", "user_id": "other"},
        "max_budget_in_team": 1,
    }
    assert (await api.post("/team/member_add", member, as_key=lead))[0] == 200
    assert (await api.post("/team/member_add", {**member, "team_id": "green"}, as_key=lead))[
        0
    ] == 403
    assert (await api.post("/team/update", {"team_id": "blue", "team_alias": "Blue"}, as_key=lead))[
        0
    ] == 200
    status, answer = await api.post(
        "/team/update", {"team_id": "blue", "max_budget": 99}, as_key=lead
    )
    assert status == 403 and "max_budget" in answer["error"]["message"]
    listed = (await api.get("/key/list", as_key=lead, team_id="blue"))[1]
    assert listed["total_count"] == 1
    # A plain member reads its team but does not manage it.
    assert (await api.get("/team/info", as_key=other, team_id="blue"))[0] == 200
    assert (await api.post("/team/update", {"team_id": "blue", "team_alias": "x"}, as_key=other))[
        0
    ] == 403
    assert (await api.get("/team/info", as_key=other, team_id="green"))[0] == 403


async def test_viewers_read_and_change_nothing(api: Api) -> None:
    viewer = await user_key(api, "auditor", "proxy_admin_viewer")
    await api.ok("POST", "/key/generate", {"key_alias": "someone"})
    assert (await api.get("/key/list", as_key=viewer))[1]["total_count"] == 2
    assert (await api.get("/user/list", as_key=viewer))[0] == 200
    assert (await api.get("/global/spend/report", as_key=viewer))[0] == 200
    assert (await api.post("/key/generate", {}, as_key=viewer))[0] == 403
    assert (await api.post("/key/block", {"key": "someone"}, as_key=viewer))[0] == 403
    assert (await api.get("/audit/logs", as_key=viewer))[0] == 403
    own_viewer = await user_key(api, "reader", "internal_user_viewer")
    assert (await api.get("/key/list", as_key=own_viewer))[0] == 200
    assert (await api.post("/key/generate", {}, as_key=own_viewer))[0] == 403


async def test_a_proxy_admin_users_key_is_an_admin_and_an_expired_key_is_refused(
    api: Api, database: Database
) -> None:
    admin = await user_key(api, "root", "proxy_admin")
    assert (await api.get("/audit/logs", as_key=admin))[0] == 200
    assert (await api.post("/team/new", {"team_id": "t"}, as_key=admin))[0] == 200
    # Expiry is checked against the clock: move it to the past rather than wait.
    async with database.transaction() as conn:
        await conn.execute(sa.update(api_keys).values(expires=now() - timedelta(seconds=1)))
    status, answer = await api.get("/key/info", as_key=admin)
    assert status == 401 and answer["error"]["code"] == "key_expired"


async def test_a_key_without_a_user_reads_only_itself(api: Api) -> None:
    lone = await api.ok("POST", "/key/generate", {"key_alias": "lone"})
    other = await api.ok("POST", "/key/generate", {"key_alias": "other"})
    status, listed = await api.get("/key/list", as_key=lone["key"])
    assert status == 200 and listed["keys"] == [lone["token_id"]]
    assert (await api.get("/key/list", as_key=lone["key"], key_hash=other["token_id"]))[0] == 403
    assert (await api.get("/key/info", as_key=lone["key"]))[0] == 200
    assert (await api.get("/key/info", as_key=lone["key"], key=other["key"]))[0] == 403
    assert (await api.post("/key/generate", {}, as_key=lone["key"]))[0] == 403
    assert (await api.get("/team/list", as_key=lone["key"]))[1] == []
