"""Issue #17, management API: virtual keys through HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests.broker.management.conftest import Api
from workers.db.engine import Database
from workers.db.tables import api_keys, audit_log


async def test_a_generated_key_is_returned_once_and_stored_only_as_litellms_hash(
    api: Api, database: Database
) -> None:
    created = await api.ok(
        "POST",
        "/key/generate",
        {
            "key_alias": "svc-a",
            "models": ["gpt-test"],
            "max_budget": 10,
            "duration": "30d",
            "budget_duration": "1mo",
            "metadata": {"owner": "a"},
            "tags": ["prod"],
        },
    )
    key = created["key"]
    assert key.startswith("sk-") and len(key) > 20
    token = hashlib.sha256(key.encode()).hexdigest()  # litellm.proxy._types.hash_token
    assert created["token_id"] == token and created["key_name"] == f"sk-...{key[-4:]}"
    expires = datetime.fromisoformat(created["expires"])
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)
    assert created["budget_reset_at"] is not None

    async with database.engine.connect() as conn:
        stored = (await conn.execute(sa.select(api_keys))).mappings().one()
        audit_text = str((await conn.execute(sa.select(audit_log))).mappings().all())
    assert stored["token"] == token
    assert key not in str(dict(stored)) and key not in audit_text

    info = await api.ok("GET", "/key/info", key=key)
    assert info["info"]["key_alias"] == "svc-a" and info["info"]["remaining_budget"] == 10
    by_hash = await api.ok("GET", "/key/info", key=token)
    assert by_hash["info"]["token"] == token
    assert "key" not in info["info"]


async def test_keys_update_list_block_regenerate_and_delete(api: Api) -> None:
    key = (await api.ok("POST", "/key/generate", {"key_alias": "svc-b"}))["key"]
    updated = await api.ok("POST", "/key/update", {"key": key, "max_budget": 5, "rpm_limit": 50})
    assert (updated["max_budget"], updated["rpm_limit"], updated["key"]) == (5, 50, key)

    listed = await api.ok("GET", "/key/list", return_full_object="true")
    assert listed["total_count"] == 1 and listed["keys"][0]["key_alias"] == "svc-b"
    assert (await api.ok("GET", "/key/list"))["keys"] == [listed["keys"][0]["token"]]

    assert (await api.ok("POST", "/key/block", {"key": key}))["blocked"] is True
    status, answer = await api.get("/key/info", as_key=key)
    assert status == 401 and answer["error"]["code"] == "key_blocked"
    assert (await api.ok("POST", "/key/unblock", {"key": "svc-b"}))["blocked"] is False
    assert (await api.get("/key/info", as_key=key))[0] == 200

    fresh = await api.ok("POST", f"/key/{key}/regenerate", {"max_budget": 7})
    assert fresh["key"] != key and fresh["max_budget"] == 7 and fresh["key_alias"] == "svc-b"
    assert (await api.get("/key/info", as_key=key))[0] == 401
    assert (await api.get("/key/info", as_key=fresh["key"]))[0] == 200
    again = await api.ok("POST", "/key/regenerate", {"key": fresh["key"]})
    assert (await api.get("/key/info", as_key=again["key"]))[0] == 200

    deleted = await api.ok("POST", "/key/delete", {"key_aliases": ["svc-b"]})
    assert deleted == {"deleted_keys": ["svc-b"]}
    status, answer = await api.get("/key/info", key=again["key"])
    assert status == 404 and answer["error"]["type"] == "not_found_error"


async def test_key_bodies_are_checked_and_unknown_fields_named(api: Api) -> None:
    for body, param in [
        ({"max_budget": -1}, "max_budget"),
        ({"budget_duration": "forever"}, "budget_duration"),
        ({"duration": "3x"}, "duration"),
        ({"modles": ["gpt-test"]}, "modles"),  # a typo is named, never dropped
        ({"guardrails": ["pii"]}, "guardrails"),  # no such guardrail in the config
        ({"rpm_limit": 1e400}, None),
        ({"key_alias": "a\u0000b"}, "key_alias"),
        ({"team_id": "no-such-team"}, "team_id"),
    ]:
        status, answer = await api.post("/key/generate", body)
        assert status == 400, (body, answer)
        assert set(answer["error"]) == {"message", "type", "param", "code"}
        assert answer["error"]["param"] == param, (body, answer)
    # What LiteLLM's own client sends (`api_key`), and LiteLLM fields at their empty value.
    status, _ = await api.post(
        "/key/generate", {"api_key": "sk-ignored", "guardrails": [], "aliases": {}}
    )
    assert status == 200
    await api.ok("POST", "/key/generate", {"key_alias": "dup"})
    status, answer = await api.post("/key/generate", {"key_alias": "dup"})
    assert status == 400 and answer["error"]["param"] == "key_alias"


async def test_a_team_key_is_limited_to_the_teams_models(api: Api) -> None:
    await api.ok("POST", "/team/new", {"team_id": "t1", "models": ["gpt-test"]})
    status, answer = await api.post("/key/generate", {"team_id": "t1", "models": ["other"]})
    assert status == 400 and answer["error"]["param"] == "models"
    created = await api.ok("POST", "/key/generate", {"team_id": "t1", "models": ["gpt-test"]})
    assert created["team_id"] == "t1"
