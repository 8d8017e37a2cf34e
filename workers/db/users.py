"""Internal users (LiteLLM's `LiteLLM_UserTable`): queries on `users`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workers.db import rows

# Re-exported (`X as X`): `users.PROXY_ADMIN` reads well; defined in workers.db.plain.
from workers.db.plain import INTERNAL_USER as INTERNAL_USER
from workers.db.plain import INTERNAL_USER_VIEWER as INTERNAL_USER_VIEWER
from workers.db.plain import PROXY_ADMIN as PROXY_ADMIN
from workers.db.plain import PROXY_ADMIN_VIEWER as PROXY_ADMIN_VIEWER
from workers.db.plain import ROLES as ROLES
from workers.db.rows import Row
from workers.db.tables import users


async def get(conn: AsyncConnection, user_id: str, *, for_update: bool = False) -> Row | None:
    return await rows.get(conn, users, user_id, for_update=for_update)


async def get_by_email(conn: AsyncConnection, email: str) -> Row | None:
    statement = sa.select(users).where(users.c.user_email == email).order_by(users.c.user_id)
    return await rows.fetch_one(conn, statement.limit(1))


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> Row:
    return await rows.insert(conn, users, values)


async def update(conn: AsyncConnection, user_id: str, values: dict[str, Any]) -> Row | None:
    return await rows.update(conn, users, user_id, values)


async def delete(conn: AsyncConnection, user_ids: Iterable[str]) -> list[Row]:
    return await rows.delete(conn, users, user_ids)


async def list_page(
    conn: AsyncConnection,
    *,
    role: str | None = None,
    user_ids: Iterable[str] | None = None,
    page: int = 1,
    size: int = 100,
) -> tuple[list[Row], int]:
    statement = sa.select(users)
    if role is not None:
        statement = statement.where(users.c.user_role == role)
    if user_ids is not None:
        statement = statement.where(users.c.user_id.in_(list(user_ids)))
    order = [users.c.created_at, users.c.user_id]
    return await rows.page(conn, statement, order, number=page, size=size)
