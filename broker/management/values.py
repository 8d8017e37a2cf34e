"""From request bodies to column values: the fields a caller set, limits with their reset
time, creation stamps, and budget rows for entities that keep their limits in one."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from broker.management.access import Principal
from broker.management.bodies import Body
from workers import durations
from workers.db import budgets
from workers.db.rows import Row, now
from workers.errors import InvalidRequest, NotFound

LIMIT_FIELDS = (
    "max_budget",
    "soft_budget",
    "budget_duration",
    "rpm_limit",
    "tpm_limit",
    "max_parallel_requests",
    "model_max_budget",
)


def new_id() -> str:
    return str(uuid.uuid4())


def given(body: Body, fields: Iterable[str]) -> dict[str, Any]:
    """The fields among `fields` the body set (None means "not given", as in LiteLLM)."""
    values = {name: getattr(body, name) for name in fields}
    return {name: value for name, value in values.items() if value is not None}


def with_reset(values: dict[str, Any], moment: datetime) -> dict[str, Any]:
    """A new budget_duration starts a new period now."""
    if values.get("budget_duration"):
        values["budget_reset_at"] = durations.after(moment, values["budget_duration"])
    return values


def created(principal: Principal) -> dict[str, Any]:
    stamp = now()
    return {
        "created_at": stamp,
        "created_by": principal.name,
        "updated_at": stamp,
        "updated_by": principal.name,
    }


def updated(principal: Principal) -> dict[str, Any]:
    return {"updated_at": now(), "updated_by": principal.name}


def body_fields(body: Body) -> list[str]:
    return [name for name in body.__struct_fields__ if name in LIMIT_FIELDS]


async def budget_for(
    conn: AsyncConnection, body: Body, principal: Principal, budget_id: str | None
) -> tuple[str | None, Row | None]:
    """LiteLLM keeps the limits of organizations and end users in a budget row: make one for
    limits given inline (or update the entity's own), and return its id and row."""
    limits = with_reset(given(body, body_fields(body)), now())
    if not limits:
        return budget_id, None
    if budget_id is not None:
        existing = await budgets.get(conn, budget_id, for_update=True)
        if existing is not None:
            after = await budgets.update(conn, budget_id, {**limits, **updated(principal)})
            return budget_id, after
    budget_id = budget_id or new_id()
    row = await budgets.insert(conn, {"budget_id": budget_id, **limits, **created(principal)})
    return budget_id, row


async def with_budget(conn: AsyncConnection, row: Row) -> dict[str, Any]:
    """A row with its budget row, as LiteLLM answers (`litellm_budget_table`)."""
    budget = await budgets.get(conn, row["budget_id"]) if row.get("budget_id") else None
    return {**row, "litellm_budget_table": budget}


async def check_budget_or_limits(conn: AsyncConnection, body: Any) -> None:
    """A named budget must exist, and comes instead of limits given inline (LiteLLM's rule)."""
    if body.budget_id is None:
        return
    if given(body, LIMIT_FIELDS):
        raise InvalidRequest("set either `budget_id` or the limits, not both", param="budget_id")
    if await budgets.get(conn, body.budget_id) is None:
        raise NotFound(f"no budget `{body.budget_id}`", code="budget_not_found")
