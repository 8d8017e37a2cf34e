"""Copy a LiteLLM proxy's database into Switchboard's (issue #17, `switchboard import-litellm`):
keys (their hashes, so the keys their owners hold work at once), users, teams and their
members, organizations, budgets, end users, and the spend totals of each.

The LiteLLM tables are read by reflection, so any LiteLLM version's columns are found as they
are (a column an older version lacks is simply absent). Rows are inserted only where their id
is new (ON CONFLICT DO NOTHING): running the import twice changes nothing, and a row
Switchboard has since changed is never overwritten by the older LiteLLM copy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workers.db import audit, rows
from workers.db.engine import Database, create_engine
from workers.db.rows import Row
from workers.db.tables import (
    api_keys,
    budgets,
    end_users,
    organizations,
    team_memberships,
    teams,
    users,
)
from workers.db.users import INTERNAL_USER, ROLES

log = logging.getLogger("switchboard.import")

SOURCES = {
    "budgets": "LiteLLM_BudgetTable",
    "organizations": "LiteLLM_OrganizationTable",
    "users": "LiteLLM_UserTable",
    "teams": "LiteLLM_TeamTable",
    "memberships": "LiteLLM_TeamMembership",
    "keys": "LiteLLM_VerificationToken",
    "end_users": "LiteLLM_EndUserTable",
}
LIMITS = (
    "max_budget",
    "soft_budget",
    "budget_duration",
    "budget_reset_at",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
)


class ImportCounts(msgspec.Struct):
    """Per kind of row: how many were copied, and how many were already there."""

    imported: dict[str, int] = {}
    present: dict[str, int] = {}


def _read_all(connection: sa.Connection) -> dict[str, list[Row]]:
    found = set(sa.inspect(connection).get_table_names())
    metadata = sa.MetaData()
    names = [name for name in SOURCES.values() if name in found]
    metadata.reflect(bind=connection, only=names)
    read: dict[str, list[Row]] = {}
    for kind, name in SOURCES.items():
        table = metadata.tables.get(name)
        if table is None:
            read[kind] = []
            continue
        result = connection.execute(sa.select(table)).mappings()
        read[kind] = [rows.as_row(row) for row in result]
    return read


async def read_litellm(url: str) -> dict[str, list[Row]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_read_all)
    finally:
        await engine.dispose()


def _pick(row: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    return {name: row[name] for name in names if row.get(name) is not None}


def _stamps(row: Mapping[str, Any]) -> dict[str, Any]:
    stamp = rows.now()
    return {
        "created_at": row.get("created_at") or stamp,
        "created_by": row.get("created_by") or "litellm import",
        "updated_at": row.get("updated_at") or stamp,
        "updated_by": row.get("updated_by") or "litellm import",
    }


def _json(value: Any, empty: Any) -> Any:
    return empty if value is None else value


def _budget(row: Row) -> dict[str, Any]:
    return {
        "budget_id": row["budget_id"],
        **_pick(row, LIMITS),
        "model_max_budget": _json(row.get("model_max_budget"), {}),
        **_stamps(row),
    }


def _organization(row: Row, budget_ids: set[str]) -> dict[str, Any]:
    return {
        "organization_id": row["organization_id"],
        "organization_alias": row.get("organization_alias") or row["organization_id"],
        "budget_id": row.get("budget_id") if row.get("budget_id") in budget_ids else None,
        "models": _json(row.get("models"), []),
        "metadata": _json(row.get("metadata"), {}),
        "spend": row.get("spend") or 0.0,
        "model_spend": _json(row.get("model_spend"), {}),
        **_stamps(row),
    }


def _owned(row: Row) -> dict[str, Any]:
    """What users, teams and keys share: limits, models, metadata, spend."""
    return {
        **_pick(row, LIMITS),
        "models": _json(row.get("models"), []),
        "metadata": _json(row.get("metadata"), {}),
        "model_max_budget": _json(row.get("model_max_budget"), {}),
        "spend": row.get("spend") or 0.0,
        "model_spend": _json(row.get("model_spend"), {}),
    }


def _user(row: Row, org_ids: set[str]) -> dict[str, Any]:
    role = row.get("user_role")
    return {
        "user_id": row["user_id"],
        "user_alias": row.get("user_alias"),
        "user_email": row.get("user_email"),
        # LiteLLM's other roles (org_admin, team, customer) have no management power here.
        "user_role": role if role in ROLES else INTERNAL_USER,
        "organization_id": row.get("organization_id")
        if row.get("organization_id") in org_ids
        else None,
        **_owned(row),
        **_stamps(row),
    }


def _team(row: Row, org_ids: set[str]) -> dict[str, Any]:
    metadata = _json(row.get("metadata"), {})
    return {
        "team_id": row["team_id"],
        "team_alias": row.get("team_alias"),
        "organization_id": row.get("organization_id")
        if row.get("organization_id") in org_ids
        else None,
        "tags": list(metadata.get("tags") or []) if isinstance(metadata, dict) else [],
        "blocked": bool(row.get("blocked")),
        **_owned(row),
        **_stamps(row),
    }


def _key(row: Row, budget_rows: dict[str, Row]) -> dict[str, Any]:
    metadata = _json(row.get("metadata"), {})
    budget = budget_rows.get(row.get("budget_id") or "")
    return {
        "token": row["token"],
        "key_name": (row.get("key_name") or "sk-...")[:32],
        "key_alias": row.get("key_alias"),
        "user_id": row.get("user_id"),
        "team_id": row.get("team_id"),
        "organization_id": row.get("organization_id"),
        "budget_id": budget["budget_id"] if budget else None,
        "tags": list(metadata.get("tags") or []) if isinstance(metadata, dict) else [],
        "allowed_routes": _json(row.get("allowed_routes"), []),
        **_owned(row),
        # LiteLLM keeps a key's soft budget on its budget row.
        "soft_budget": budget.get("soft_budget") if budget else None,
        "expires": row.get("expires"),
        "blocked": bool(row.get("blocked")),
        "last_active": row.get("last_active"),
        **_stamps(row),
    }


def _end_user(row: Row, budget_ids: set[str]) -> dict[str, Any]:
    stamp = rows.now()
    return {
        "user_id": row["user_id"],
        "alias": row.get("alias"),
        "budget_id": row.get("budget_id") if row.get("budget_id") in budget_ids else None,
        "allowed_model_region": row.get("allowed_model_region"),
        "default_model": row.get("default_model"),
        "spend": row.get("spend") or 0.0,
        "blocked": bool(row.get("blocked")),
        "created_at": stamp,
        "created_by": "litellm import",
        "updated_at": stamp,
        "updated_by": "litellm import",
    }


def _memberships(read: dict[str, list[Row]], user_ids: set[str]) -> list[dict[str, Any]]:
    """One row per (team, user) from the three places LiteLLM keeps membership."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    team_ids = {team["team_id"] for team in read["teams"]}
    for team in read["teams"]:
        for member in _json(team.get("members_with_roles"), []) or []:
            if isinstance(member, dict) and member.get("user_id"):
                role = "admin" if member.get("role") == "admin" else "user"
                found[(team["team_id"], member["user_id"])] = {"role": role}
    for user in read["users"]:
        for team_id in user.get("teams") or []:
            found.setdefault((team_id, user["user_id"]), {"role": "user"})
    for membership in read["memberships"]:
        pair = (membership["team_id"], membership["user_id"])
        found.setdefault(pair, {"role": "user"}).update(
            spend=membership.get("spend") or 0.0, budget_id=membership.get("budget_id")
        )
    stamp = rows.now()
    return [
        {"team_id": team_id, "user_id": user_id, "created_at": stamp, "spend": 0.0, **values}
        for (team_id, user_id), values in found.items()
        if team_id in team_ids and user_id in user_ids
    ]


async def _insert_new(
    conn: AsyncConnection,
    table: sa.Table,
    values: list[dict[str, Any]],
    counts: ImportCounts,
    kind: str,
) -> None:
    imported = 0
    for value in values:
        insert = rows.dialect_insert(conn, table).values(**value)
        result = await conn.execute(insert.on_conflict_do_nothing())
        imported += result.rowcount or 0
    counts.imported[kind] = imported
    counts.present[kind] = len(values) - imported


async def _free_aliases(conn: AsyncConnection, keys: list[dict[str, Any]]) -> int:
    """Keys whose alias another key holds keep no alias (aliases are unique here; older
    LiteLLM versions did not insist). Returns how many lost theirs."""
    taken = {
        row["key_alias"]: row["token"]
        for row in await rows.fetch_all(
            conn,
            sa.select(api_keys.c.key_alias, api_keys.c.token).where(
                api_keys.c.key_alias.is_not(None)
            ),
        )
    }
    dropped = 0
    for key in keys:
        alias = key["key_alias"]
        if alias is not None and taken.setdefault(alias, key["token"]) != key["token"]:
            key["key_alias"] = None
            dropped += 1
    return dropped


async def import_litellm(source_url: str, target: Database) -> ImportCounts:
    read = await read_litellm(source_url)
    counts = ImportCounts(imported={}, present={})
    budget_rows = {row["budget_id"]: row for row in read["budgets"]}
    budget_ids = set(budget_rows)
    org_ids = {row["organization_id"] for row in read["organizations"]}
    async with target.transaction() as conn:
        await _insert_new(conn, budgets, [_budget(r) for r in read["budgets"]], counts, "budgets")
        await _insert_new(
            conn,
            organizations,
            [_organization(r, budget_ids) for r in read["organizations"]],
            counts,
            "organizations",
        )
        await _insert_new(conn, users, [_user(r, org_ids) for r in read["users"]], counts, "users")
        await _insert_new(conn, teams, [_team(r, org_ids) for r in read["teams"]], counts, "teams")
        user_ids = {row["user_id"] for row in read["users"]}
        members = _memberships(read, user_ids)
        for member in members:
            if member.get("budget_id") not in budget_ids:
                member["budget_id"] = None
        await _insert_new(conn, team_memberships, members, counts, "team_members")
        keys = [_key(r, budget_rows) for r in read["keys"] if len(r["token"]) <= 64]
        if await _free_aliases(conn, keys):
            log.warning("some imported keys share an alias; the later ones keep none")
        await _insert_new(conn, api_keys, keys, counts, "keys")
        await _insert_new(
            conn,
            end_users,
            [_end_user(r, budget_ids) for r in read["end_users"]],
            counts,
            "end_users",
        )
        if any(counts.imported.values()):
            await audit.record(
                conn,
                changed_by="litellm import",
                changed_by_key=None,
                role="proxy_admin",
                action="import",
                object_type="litellm",
                object_id="litellm",
                after=msgspec.to_builtins(counts),
            )
    return counts
