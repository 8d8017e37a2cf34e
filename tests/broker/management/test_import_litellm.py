"""Issue #17, item 6: `switchboard import-litellm` copies a LiteLLM database (keys as their
hashes, users, teams and members, organizations, budgets, end users, spend totals) so its keys
work on Switchboard at once; a second run changes nothing.

The LiteLLM database is PostgreSQL with the tables the import reads, written here by hand from
LiteLLM's schema.prisma (its quoted table names, camel case and all)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa

from broker.cli import main
from tests import db_servers
from tests.broker.management.conftest import Api
from workers.db.engine import Database
from workers.db.tables import metadata

# From LiteLLM's schema.prisma: the models and the columns the import reads.
LITELLM_SCHEMA = [
    """CREATE TABLE "LiteLLM_BudgetTable" (
        budget_id TEXT PRIMARY KEY, max_budget DOUBLE PRECISION, soft_budget DOUBLE PRECISION,
        max_parallel_requests INTEGER, tpm_limit BIGINT, rpm_limit BIGINT,
        model_max_budget JSONB, budget_duration TEXT, budget_reset_at TIMESTAMP(3),
        created_at TIMESTAMP(3) NOT NULL DEFAULT now(), created_by TEXT NOT NULL,
        updated_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_by TEXT NOT NULL)""",
    """CREATE TABLE "LiteLLM_OrganizationTable" (
        organization_id TEXT PRIMARY KEY, organization_alias TEXT NOT NULL,
        budget_id TEXT NOT NULL REFERENCES "LiteLLM_BudgetTable"(budget_id),
        metadata JSONB NOT NULL DEFAULT '{}', models TEXT[], spend DOUBLE PRECISION NOT NULL
        DEFAULT 0, model_spend JSONB NOT NULL DEFAULT '{}',
        created_at TIMESTAMP(3) NOT NULL DEFAULT now(), created_by TEXT NOT NULL,
        updated_at TIMESTAMP(3) NOT NULL DEFAULT now(), updated_by TEXT NOT NULL)""",
    """CREATE TABLE "LiteLLM_TeamTable" (
        team_id TEXT PRIMARY KEY, team_alias TEXT, organization_id TEXT, admins TEXT[],
        members TEXT[], members_with_roles JSONB NOT NULL DEFAULT '{}',
        metadata JSONB NOT NULL DEFAULT '{}', max_budget DOUBLE PRECISION,
        soft_budget DOUBLE PRECISION, spend DOUBLE PRECISION NOT NULL DEFAULT 0, models TEXT[],
        max_parallel_requests INTEGER, tpm_limit BIGINT, rpm_limit BIGINT,
        budget_duration TEXT, budget_reset_at TIMESTAMP(3), blocked BOOLEAN NOT NULL DEFAULT
        false, created_at TIMESTAMP(3) NOT NULL DEFAULT now(),
        updated_at TIMESTAMP(3) NOT NULL DEFAULT now(),
        model_spend JSONB NOT NULL DEFAULT '{}', model_max_budget JSONB NOT NULL DEFAULT '{}')""",
    """CREATE TABLE "LiteLLM_UserTable" (
        user_id TEXT PRIMARY KEY, user_alias TEXT, team_id TEXT, organization_id TEXT,
        teams TEXT[] DEFAULT ARRAY[]::TEXT[], user_role TEXT, max_budget DOUBLE PRECISION,
        spend DOUBLE PRECISION NOT NULL DEFAULT 0, user_email TEXT, models TEXT[],
        metadata JSONB NOT NULL DEFAULT '{}', max_parallel_requests INTEGER, tpm_limit BIGINT,
        rpm_limit BIGINT, budget_duration TEXT, budget_reset_at TIMESTAMP(3),
        model_spend JSONB NOT NULL DEFAULT '{}', model_max_budget JSONB NOT NULL DEFAULT '{}',
        created_at TIMESTAMP(3) DEFAULT now(), updated_at TIMESTAMP(3) DEFAULT now())""",
    """CREATE TABLE "LiteLLM_TeamMembership" (
        user_id TEXT NOT NULL, team_id TEXT NOT NULL, spend DOUBLE PRECISION NOT NULL
        DEFAULT 0, budget_id TEXT, PRIMARY KEY (user_id, team_id))""",
    """CREATE TABLE "LiteLLM_VerificationToken" (
        token TEXT PRIMARY KEY, key_name TEXT, key_alias TEXT, spend DOUBLE PRECISION NOT NULL
        DEFAULT 0, expires TIMESTAMP(3), models TEXT[], user_id TEXT, team_id TEXT,
        max_parallel_requests INTEGER, metadata JSONB NOT NULL DEFAULT '{}', blocked BOOLEAN,
        tpm_limit BIGINT, rpm_limit BIGINT, max_budget DOUBLE PRECISION, budget_duration TEXT,
        budget_reset_at TIMESTAMP(3), allowed_routes TEXT[] DEFAULT ARRAY[]::TEXT[],
        model_spend JSONB NOT NULL DEFAULT '{}', model_max_budget JSONB NOT NULL DEFAULT '{}',
        budget_id TEXT, organization_id TEXT, created_at TIMESTAMP(3) DEFAULT now(),
        created_by TEXT, updated_at TIMESTAMP(3) DEFAULT now(), updated_by TEXT,
        last_active TIMESTAMP(3))""",
    """CREATE TABLE "LiteLLM_EndUserTable" (
        user_id TEXT PRIMARY KEY, alias TEXT, spend DOUBLE PRECISION NOT NULL DEFAULT 0,
        allowed_model_region TEXT, default_model TEXT, budget_id TEXT,
        blocked BOOLEAN NOT NULL DEFAULT false)""",
]
ADMIN_KEY = "sk-litellm-admin-0123456789"
USER_KEY = "sk-litellm-user-0123456789"


def litellm_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()  # litellm.proxy._types.hash_token


async def fill(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in LITELLM_SCHEMA:
            await conn.execute(statement)
        await conn.execute(
            """INSERT INTO "LiteLLM_BudgetTable" (budget_id, max_budget, soft_budget,
               budget_duration, created_by, updated_by) VALUES
               ('b-org', 1000, NULL, '30d', 'admin', 'admin'),
               ('b-key', NULL, 8, NULL, 'admin', 'admin'),
               ('b-cust', 5, NULL, '1d', 'admin', 'admin')"""
        )
        await conn.execute(
            """INSERT INTO "LiteLLM_OrganizationTable" (organization_id, organization_alias,
               budget_id, models, spend, created_by, updated_by)
               VALUES ('org-1', 'Acme', 'b-org', ARRAY['gpt-4o'], 12.5, 'admin', 'admin')"""
        )
        roles = json.dumps(
            [{"role": "admin", "user_id": "boss"}, {"role": "user", "user_id": "dev"}]
        )
        await conn.execute(
            """INSERT INTO "LiteLLM_TeamTable" (team_id, team_alias, organization_id,
               members_with_roles, metadata, max_budget, spend, models, tpm_limit, blocked)
               VALUES ('team-1', 'Platform', 'org-1', $1::jsonb, '{"tags": ["core"]}', 100,
               7.25, ARRAY['gpt-4o'], 5000, false)""",
            roles,
        )
        await conn.execute(
            """INSERT INTO "LiteLLM_UserTable" (user_id, user_email, user_role, max_budget,
               spend, teams, models) VALUES
               ('boss', 'boss@example.com', 'proxy_admin', NULL, 3, ARRAY['team-1'], '{}'),
               ('dev', 'dev@example.com', 'internal_user', 10, 4.25, ARRAY['team-1'], '{}'),
               ('odd', NULL, 'org_admin', NULL, 0, '{}', '{}')"""
        )
        await conn.execute(
            """INSERT INTO "LiteLLM_TeamMembership" (user_id, team_id, spend)
               VALUES ('dev', 'team-1', 4.25)"""
        )
        await conn.execute(
            """INSERT INTO "LiteLLM_VerificationToken" (token, key_name, key_alias, spend,
               models, user_id, team_id, metadata, blocked, max_budget, budget_duration,
               rpm_limit, budget_id, model_spend) VALUES
               ($1, 'sk-...6789', 'boss-key', 3, '{}', 'boss', NULL, '{}', NULL, NULL, NULL,
                NULL, NULL, '{}'),
               ($2, 'sk-...6789', 'dev-key', 4.25, ARRAY['gpt-4o'], 'dev', 'team-1',
                '{"tags": ["nightly"]}', false, 20, '1mo', 60, 'b-key', '{"gpt-4o": 4.25}')""",
            litellm_hash(ADMIN_KEY),
            litellm_hash(USER_KEY),
        )
        await conn.execute(
            """INSERT INTO "LiteLLM_EndUserTable" (user_id, alias, spend, budget_id, blocked)
               VALUES ('customer-9', 'Big Co', 0.75, 'b-cust', false)"""
        )
    finally:
        await conn.close()


@pytest.fixture
def litellm_url() -> Iterator[str]:
    if not db_servers.postgres_reachable():
        pytest.skip(f"no PostgreSQL at {db_servers.SHARED_URL}")
    url = db_servers.create_database(db_servers.SHARED_URL, prefix="litellm")
    asyncio.run(fill(url))
    yield url
    db_servers.drop_database(url)


async def snapshot(database: Database) -> dict[str, list[dict[str, Any]]]:
    async with database.transaction() as conn:
        return {
            table.name: [
                dict(row)
                for row in (
                    await conn.execute(sa.select(table).order_by(*table.primary_key.columns))
                ).mappings()
            ]
            for table in metadata.sorted_tables
        }


async def run_import(source: str, target: str, capsys: pytest.CaptureFixture[str]) -> str:
    argv = ["import-litellm", "--database-url", source, "--target-database-url", target]
    assert await asyncio.to_thread(main, argv) == 0
    return capsys.readouterr().out


async def test_a_litellm_database_imports_once_and_its_keys_work_at_once(
    litellm_url: str,
    database_url: str,
    database: Database,
    api: Api,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = await run_import(litellm_url, database_url, capsys)
    assert "keys" in out and "imported" in out

    status, listed = await api.get("/key/list", as_key=ADMIN_KEY, return_full_object="true")
    assert status == 200, listed  # a LiteLLM proxy admin's key manages Switchboard
    by_alias = {key["key_alias"]: key for key in listed["keys"]}
    dev_key = by_alias["dev-key"]
    assert dev_key["token"] == litellm_hash(USER_KEY)
    assert (dev_key["spend"], dev_key["max_budget"], dev_key["soft_budget"]) == (4.25, 20, 8)
    assert (dev_key["team_id"], dev_key["tags"], dev_key["rpm_limit"]) == (
        "team-1",
        ["nightly"],
        60,
    )
    status, own = await api.get("/key/info", as_key=USER_KEY)
    assert status == 200 and own["info"]["model_spend"] == {"gpt-4o": 4.25}

    team = await api.ok("GET", "/team/info", team_id="team-1")
    info = team["team_info"]
    assert (info["team_alias"], info["spend"], info["tags"], info["organization_id"]) == (
        "Platform",
        7.25,
        ["core"],
        "org-1",
    )
    assert {(m["user_id"], m["role"]) for m in info["members_with_roles"]} == {
        ("boss", "admin"),
        ("dev", "user"),
    }
    assert {m["user_id"]: m["spend"] for m in team["team_memberships"]}["dev"] == 4.25
    org = await api.ok("GET", "/organization/info", organization_id="org-1")
    assert org["spend"] == 12.5 and org["litellm_budget_table"]["max_budget"] == 1000
    customer = await api.ok("GET", "/customer/info", end_user_id="customer-9")
    assert customer["spend"] == 0.75 and customer["litellm_budget_table"]["max_budget"] == 5
    assert (await api.ok("GET", "/user/info", user_id="odd"))["user_info"]["user_role"] == (
        "internal_user"
    )

    before = await snapshot(database)
    out = await run_import(litellm_url, database_url, capsys)
    assert await snapshot(database) == before  # the second run changes nothing
    keys_line = next(line for line in out.splitlines() if line.startswith("keys"))
    assert keys_line.split() == ["keys", "0", "2"]
