"""The audit log: one row per management call that changed something (issue #17).

Values are masked before they are written: every string goes through
`workers.log_redaction.mask_secrets`, and fields that name a secret are dropped whole, so
neither a key nor a password reaches the table. The row is written in the same transaction
as the change, so there is no change without its row.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workers.db import rows
from workers.db.rows import Row
from workers.db.tables import audit_log
from workers.log_redaction import MASK, mask_secrets

# Fields whose whole value is a secret, whatever it looks like.
SECRET_FIELDS = frozenset({"key", "new_key", "api_key_value", "password", "new_master_key"})


def masked(value: Any) -> Any:
    """`value` as JSON-ready data with every secret masked."""
    if isinstance(value, dict):
        return {k: MASK if k in SECRET_FIELDS else masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    if isinstance(value, str):
        return mask_secrets(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


async def record(
    conn: AsyncConnection,
    *,
    changed_by: str,
    changed_by_key: str | None,
    role: str,
    action: str,
    object_type: str,
    object_id: str,
    before: Any = None,
    after: Any = None,
) -> Row:
    return await rows.insert(
        conn,
        audit_log,
        {
            "id": uuid.uuid4().hex,
            "created_at": rows.now(),
            "changed_by": changed_by,
            "changed_by_key": changed_by_key,
            "role": role,
            "action": action,
            "object_type": object_type,
            "object_id": object_id,
            "before_value": masked(before),
            "after_value": masked(after),
        },
    )


async def list_page(
    conn: AsyncConnection,
    *,
    object_type: str | None = None,
    object_id: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    page: int = 1,
    size: int = 100,
) -> tuple[list[Row], int]:
    statement = sa.select(audit_log)
    if object_type is not None:
        statement = statement.where(audit_log.c.object_type == object_type)
    if object_id is not None:
        statement = statement.where(audit_log.c.object_id == object_id)
    if action is not None:
        statement = statement.where(audit_log.c.action == action)
    if since is not None:
        statement = statement.where(audit_log.c.created_at >= since)
    order = [audit_log.c.created_at.desc(), audit_log.c.id]
    return await rows.page(conn, statement, order, number=page, size=size)
