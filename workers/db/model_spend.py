"""What an owner spent per model, from the spend log: the seed of a per-model budget's
counter (LiteLLM's model_max_budget) that Redis lost (issue #17; workers/tenancy/seeds.py
says which entry each row counts against)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workers.db.tables import spend_logs

c = spend_logs.c
# The spend log's rows a scope counted, by the mirror's kind of its owner. A user's scope
# counts only its keys outside a team (a team key counts against the member's instead).
OWNER_ROWS: Final = {
    "key": lambda oid: [c.api_key == oid],
    "team": lambda oid: [c.team_id == oid],
    "user": lambda oid: [c.user_id == oid, c.team_id.is_(None)],
    "team_member": lambda oid: [
        c.team_id == oid.partition("/")[0],
        c.user_id == oid.partition("/")[2],
    ],
    "organization": lambda oid: [c.organization_id == oid],
    "customer": lambda oid: [c.end_user == oid],
}


async def by_model(
    conn: AsyncConnection, kind: str, object_id: str, since: datetime | None
) -> list[tuple[str, str, float]]:
    """(model group, model, spend) of what `kind` `object_id` spent since `since` (None:
    ever), a row per group and model. Each owner column is indexed (the organization's
    rows are found through its start_time when it has a window)."""
    where = OWNER_ROWS[kind](object_id)
    if since is not None:
        where.append(c.start_time >= since)
    statement = (
        sa.select(c.model_group, c.model, sa.func.sum(c.spend))
        .where(*where)
        .group_by(c.model_group, c.model)
    )
    rows = (await conn.execute(statement)).all()
    return [(str(group), str(model), float(spent or 0.0)) for group, model, spent in rows]
