"""Every row the Redis mirror holds (workers/tenancy/mirror.py), read at once to refill a
cold Redis when a front door starts (issue #17)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workers.db import rows
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

PAGE: Final = 1000
# kind (as the mirror names it) -> (table, the columns that make its id)
TABLES: Final = {
    "key": (api_keys, ("token",)),
    "team": (teams, ("team_id",)),
    "user": (users, ("user_id",)),
    "team_member": (team_memberships, ("team_id", "user_id")),
    "organization": (organizations, ("organization_id",)),
    "customer": (end_users, ("user_id",)),
    "budget": (budgets, ("budget_id",)),
}


async def every_row(conn: AsyncConnection, kind: str) -> AsyncIterator[tuple[str, Row]]:
    """(id, row) of every row of `kind`, a page at a time, in id order."""
    table, id_columns = TABLES[kind]
    order = [table.c[name] for name in id_columns]
    offset = 0
    while True:
        page = await rows.fetch_all(
            conn, sa.select(table).order_by(*order).limit(PAGE).offset(offset)
        )
        for row in page:
            yield "/".join(str(row[name]) for name in id_columns), row
        if len(page) < PAGE:
            return
        offset += PAGE
