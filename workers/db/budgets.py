"""Budgets (LiteLLM's `LiteLLM_BudgetTable`): limits shared by reference from organizations,
end users and team members. Queries on `budgets`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workers.db import rows
from workers.db.rows import Row
from workers.db.tables import budgets


async def get(conn: AsyncConnection, budget_id: str, *, for_update: bool = False) -> Row | None:
    return await rows.get(conn, budgets, budget_id, for_update=for_update)


async def get_many(conn: AsyncConnection, budget_ids: Iterable[str]) -> list[Row]:
    statement = sa.select(budgets).where(budgets.c.budget_id.in_(list(budget_ids)))
    return await rows.fetch_all(conn, statement.order_by(budgets.c.budget_id))


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> Row:
    return await rows.insert(conn, budgets, values)


async def update(conn: AsyncConnection, budget_id: str, values: dict[str, Any]) -> Row | None:
    return await rows.update(conn, budgets, budget_id, values)


async def delete(conn: AsyncConnection, budget_ids: Iterable[str]) -> list[Row]:
    return await rows.delete(conn, budgets, budget_ids)


async def list_all(conn: AsyncConnection) -> list[Row]:
    statement = sa.select(budgets).order_by(budgets.c.created_at, budgets.c.budget_id)
    return await rows.fetch_all(conn, statement)
