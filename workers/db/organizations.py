"""Organizations: queries on `organizations`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workers.db import rows
from workers.db.rows import Row
from workers.db.tables import organizations


async def get(conn: AsyncConnection, org_id: str, *, for_update: bool = False) -> Row | None:
    return await rows.get(conn, organizations, org_id, for_update=for_update)


async def insert(conn: AsyncConnection, values: dict[str, Any]) -> Row:
    return await rows.insert(conn, organizations, values)


async def update(conn: AsyncConnection, org_id: str, values: dict[str, Any]) -> Row | None:
    return await rows.update(conn, organizations, org_id, values)


async def delete(conn: AsyncConnection, org_ids: Iterable[str]) -> list[Row]:
    return await rows.delete(conn, organizations, org_ids)


async def list_all(conn: AsyncConnection) -> list[Row]:
    statement = sa.select(organizations).order_by(
        organizations.c.created_at, organizations.c.organization_id
    )
    return await rows.fetch_all(conn, statement)
