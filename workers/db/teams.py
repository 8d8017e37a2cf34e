"""Teams and their members: queries on `teams` and `team_memberships`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workers.db import rows
from workers.db.rows import Row
from workers.db.tables import budgets, team_memberships, teams, users

ADMIN = "admin"
MEMBER = "user"


async def get(conn: AsyncConnection, team_id: str, *, for_update: bool = False) -> Row | None:
    return await rows.get(conn, teams, team_id, for_update=for_update)


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> Row:
    return await rows.insert(conn, teams, values)


async def update(conn: AsyncConnection, team_id: str, values: dict[str, Any]) -> Row | None:
    return await rows.update(conn, teams, team_id, values)


async def delete(conn: AsyncConnection, team_ids: Iterable[str]) -> list[Row]:
    return await rows.delete(conn, teams, team_ids)


async def list_page(
    conn: AsyncConnection,
    *,
    organization_id: str | None = None,
    team_ids: Iterable[str] | None = None,
    page: int = 1,
    size: int = 100,
) -> tuple[list[Row], int]:
    statement = sa.select(teams)
    if organization_id is not None:
        statement = statement.where(teams.c.organization_id == organization_id)
    if team_ids is not None:
        statement = statement.where(teams.c.team_id.in_(list(team_ids)))
    order = [teams.c.created_at, teams.c.team_id]
    return await rows.page(conn, statement, order, number=page, size=size)


async def members(conn: AsyncConnection, team_id: str) -> list[Row]:
    """A team's members with their email and in-team budget (LiteLLM's team_memberships)."""
    statement = (
        sa.select(
            team_memberships.c.user_id,
            team_memberships.c.team_id,
            team_memberships.c.role,
            team_memberships.c.spend,
            team_memberships.c.budget_id,
            users.c.user_email,
            budgets.c.max_budget.label("max_budget_in_team"),
        )
        .join(users, users.c.user_id == team_memberships.c.user_id)
        .outerjoin(budgets, budgets.c.budget_id == team_memberships.c.budget_id)
        .where(team_memberships.c.team_id == team_id)
        .order_by(team_memberships.c.created_at, team_memberships.c.user_id)
    )
    return await rows.fetch_all(conn, statement)


async def membership(conn: AsyncConnection, team_id: str, user_id: str) -> Row | None:
    statement = sa.select(team_memberships).where(
        team_memberships.c.team_id == team_id, team_memberships.c.user_id == user_id
    )
    return await rows.fetch_one(conn, statement)


async def memberships_of(conn: AsyncConnection, user_id: str) -> list[Row]:
    statement = (
        sa.select(team_memberships)
        .where(team_memberships.c.user_id == user_id)
        .order_by(team_memberships.c.team_id)
    )
    return await rows.fetch_all(conn, statement)


async def add_member(
    conn: AsyncConnection, team_id: str, user_id: str, role: str, budget_id: str | None
) -> Row:
    """Add or re-role a member (idempotent: adding a member twice keeps one row)."""
    insert = rows.dialect_insert(conn, team_memberships).values(
        team_id=team_id, user_id=user_id, role=role, budget_id=budget_id, created_at=rows.now()
    )
    changes: dict[str, Any] = {"role": insert.excluded.role}
    if budget_id is not None:
        changes["budget_id"] = insert.excluded.budget_id
    upsert = insert.on_conflict_do_update(
        index_elements=[team_memberships.c.team_id, team_memberships.c.user_id], set_=changes
    )
    await conn.execute(upsert)
    found = await membership(conn, team_id, user_id)
    assert found is not None
    return found


async def update_member(
    conn: AsyncConnection, team_id: str, user_id: str, values: dict[str, Any]
) -> None:
    await conn.execute(
        sa.update(team_memberships)
        .where(team_memberships.c.team_id == team_id, team_memberships.c.user_id == user_id)
        .values(**values)
    )


async def remove_member(conn: AsyncConnection, team_id: str, user_id: str) -> bool:
    result = await conn.execute(
        sa.delete(team_memberships).where(
            team_memberships.c.team_id == team_id, team_memberships.c.user_id == user_id
        )
    )
    return bool(result.rowcount)
