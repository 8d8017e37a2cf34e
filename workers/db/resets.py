"""Budget periods that ended (issue #17): spend back to zero and the next period's end
set, for keys, users and teams with their own `budget_duration`, and for the organizations,
end users, team members and keys that share a budget row whose period ended. Run by the
ledger writer every few seconds, so a budget resets also when no request arrives; several
writers may run it at once: each row is taken under its lock and only while still due."""

from __future__ import annotations

from datetime import datetime
from typing import Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workers import durations
from workers.db import rows
from workers.db.tables import (
    api_keys,
    budgets,
    daily_group_spend,
    end_users,
    organizations,
    spend_logs,
    team_memberships,
    teams,
    users,
)

# (table, its id column, the kind the Redis mirror calls it)
OWN_BUDGETS: Final = (
    (api_keys, "token", "key"),
    (users, "user_id", "user"),
    (teams, "team_id", "team"),
)
# Tables whose rows may share a budget row: their spend resets with its period.
SHARING: Final = (
    (organizations, "organization_id", "organization"),
    (end_users, "user_id", "customer"),
    (api_keys, "token", "key"),
)
BATCH: Final = 500


async def reset_due(conn: AsyncConnection, now: datetime) -> list[tuple[str, str]]:
    """Reset every budget period that ended by `now`; the (kind, id) of what changed."""
    changed: list[tuple[str, str]] = []
    for table, column, kind in OWN_BUDGETS:
        for row in await _due(conn, table, column, now):
            await conn.execute(
                sa.update(table)
                .where(table.c[column] == row[column])
                .values(spend=0.0, model_spend={}, budget_reset_at=_next(row, now))
            )
            changed.append((kind, row[column]))
    for row in await _due(conn, budgets, "budget_id", now):
        budget_id = row["budget_id"]
        await conn.execute(
            sa.update(budgets)
            .where(budgets.c.budget_id == budget_id)
            .values(budget_reset_at=_next(row, now))
        )
        changed.append(("budget", budget_id))
        changed += await _reset_sharers(conn, budget_id)
    return changed


async def _due(
    conn: AsyncConnection, table: sa.Table, column: str, now: datetime
) -> list[rows.Row]:
    statement = (
        sa.select(table.c[column], table.c.budget_duration, table.c.budget_reset_at)
        .where(table.c.budget_duration.is_not(None), table.c.budget_reset_at <= now)
        .limit(BATCH)
        .with_for_update(skip_locked=True)
    )
    return await rows.fetch_all(conn, statement)


def _next(row: rows.Row, now: datetime) -> datetime:
    """The end of the period that starts now (LiteLLM restarts the period at the reset)."""
    return durations.after(now, row["budget_duration"])


async def _reset_sharers(conn: AsyncConnection, budget_id: str) -> list[tuple[str, str]]:
    changed: list[tuple[str, str]] = []
    for table, column, kind in SHARING:
        reset = await conn.execute(
            sa.update(table)
            .where(table.c.budget_id == budget_id)
            .values(spend=0.0)
            .returning(table.c[column])
        )
        changed += [(kind, value) for value in reset.scalars()]
    members = await conn.execute(
        sa.update(team_memberships)
        .where(team_memberships.c.budget_id == budget_id)
        .values(spend=0.0)
        .returning(team_memberships.c.team_id, team_memberships.c.user_id)
    )
    changed += [("team_member", f"{team}/{user}") for team, user in members.all()]
    return changed


async def proxy_spend(conn: AsyncConnection, since: datetime | None) -> float:
    """What the whole proxy spent since `since` (None: ever): the seed of the proxy-wide
    budget's counter when Redis lost it (general_settings.max_budget has no row of its
    own). Since a moment: the spend log's rows from then (its start_time is indexed); ever:
    the daily model-group totals, a few rows a day."""
    if since is None:
        total = sa.select(sa.func.coalesce(sa.func.sum(daily_group_spend.c.spend), 0.0)).where(
            daily_group_spend.c.group_by == "model"
        )
    else:
        total = sa.select(sa.func.coalesce(sa.func.sum(spend_logs.c.spend), 0.0)).where(
            spend_logs.c.start_time >= since
        )
    return float((await conn.execute(total)).scalar_one())
