"""End users, LiteLLM's customers (the `user` field of a request): queries on `end_users`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workers.db import rows
from workers.db.rows import Row
from workers.db.tables import end_users


async def get(conn: AsyncConnection, user_id: str, *, for_update: bool = False) -> Row | None:
    return await rows.get(conn, end_users, user_id, for_update=for_update)


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> Row:
    return await rows.insert(conn, end_users, values)


async def update(conn: AsyncConnection, user_id: str, values: dict[str, Any]) -> Row | None:
    return await rows.update(conn, end_users, user_id, values)


async def delete(conn: AsyncConnection, user_ids: Iterable[str]) -> list[Row]:
    return await rows.delete(conn, end_users, user_ids)


async def list_all(conn: AsyncConnection, *, limit: int = rows.MAX_PAGE_SIZE) -> list[Row]:
    statement = sa.select(end_users).order_by(end_users.c.created_at, end_users.c.user_id)
    return await rows.fetch_all(conn, statement.limit(limit))
