"""The seeds of per-model budget counters (LiteLLM's model_max_budget, issue #17): what the
database says an owner spent on each of its entries in the entry's window, carried by the
mirrored entity (`Entity.model_spend`) as its overall spend is, so that a per-model counter
Redis lost (FLUSHDB, a restart without persistence, an evicted key) starts from that, not
from 0.

As for the proxy-wide budget (workers/tenancy/proxy_budget.py), the window counted is one
period back from now: a period Redis lost started within it, so the seed never counts
less than the lost period spent, and the new period starts at the loss. An entry without
a period counts everything. Each row of the spend log counts against the entry admission
would have chosen for it (`records.model_entry`), so a seed is the sum of exactly the
requests its counter counted."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from workers import durations
from workers.db import budgets, model_spend, teams
from workers.tenancy import records
from workers.tenancy.records import Entity, Limits


def period_start(moment: datetime, duration: str | None) -> datetime | None:
    """One period of `duration` back from `moment`; None (ever) without a period."""
    if not duration:
        return None
    return moment - (durations.after(moment, duration) - moment)


async def entry_spend(
    conn: AsyncConnection, kind: str, object_id: str, limits: Limits, moment: datetime
) -> dict[str, float]:
    """Spend per model_max_budget entry of `limits` in its window (entries with none left
    out): one query per distinct period among the entries (mostly one)."""
    entries = limits.model_max_budget
    periods = limits.model_budget_duration
    spent: dict[str, float] = {}
    for period in {periods.get(entry) for entry in entries}:
        since = period_start(moment, period)
        for group, model, amount in await model_spend.by_model(conn, kind, object_id, since):
            entry = records.model_entry(entries, group, model)
            if entry is not None and periods.get(entry) == period and amount:
                spent[entry] = spent.get(entry, 0.0) + amount
    return spent


class Seeder:
    """Adds the seeds to entities read from the database, reading each budget row and each
    team's member defaults once (a refill of the whole mirror shares one)."""

    def __init__(self, conn: AsyncConnection, moment: datetime) -> None:
        self.conn = conn
        self.moment = moment
        self._budgets: dict[str, Limits | None] = {}
        self._member_defaults: dict[str, Limits] = {}

    async def seeded(self, entity: Entity) -> Entity:
        if entity.kind not in model_spend.OWNER_ROWS:
            return entity
        limits = await self._effective(entity)
        if not limits.model_max_budget:
            return entity
        spent = await entry_spend(self.conn, entity.kind, entity.id, limits, self.moment)
        return entity if not spent else _with_spend(entity, spent)

    async def _effective(self, entity: Entity) -> Limits:
        """The entity's per-model budgets as admission sees them: its budget row's under
        its own, and for a member, its team's defaults under those."""
        limits = entity.limits
        if entity.budget_id:
            limits = limits.under(await self._budget(entity.budget_id))
        if entity.kind == records.MEMBER:
            limits = limits.with_model_defaults(await self._defaults(entity.id.partition("/")[0]))
        return limits

    async def _budget(self, budget_id: str) -> Limits | None:
        if budget_id not in self._budgets:
            row = await budgets.get(self.conn, budget_id)
            self._budgets[budget_id] = None if row is None else records.limits_of(row)
        return self._budgets[budget_id]

    async def _defaults(self, team_id: str) -> Limits:
        if team_id not in self._member_defaults:
            row = await teams.get(self.conn, team_id)
            raw: Any = None if row is None else row.get("team_member_model_max_budget")
            self._member_defaults[team_id] = records.model_limits(raw)
        return self._member_defaults[team_id]


def _with_spend(entity: Entity, spent: dict[str, float]) -> Entity:
    return msgspec.structs.replace(entity, model_spend=spent)
