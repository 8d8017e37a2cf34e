"""The proxy-wide budget (`general_settings.max_budget` / `budget_duration`, issue #17): the
scope every request joins, and the seed of its counter.

The counter lives in Redis like every other scope's; unlike a key's or a team's, it has no
database row whose `spend` the mirror carries. So a front door keeps the database's figure
of the proxy's spend at hand (read at start and every RESEED_EVERY_S) and admission seeds
a counter Redis lost (FLUSHDB, a restart without persistence) with it, exactly as a key's
counter is seeded from the key's row. The figure is what the spend log holds for the last
`budget_duration` (a period Redis lost started within it, so this never counts less than
the lost period spent; the new period starts at the loss), or everything without a
duration. What the ledger had not yet written when Redis lost its data is lost with it:
the counter is short by at most the last few seconds' spend."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Final

from workers import durations
from workers.db import resets
from workers.db.engine import Database, DatabaseUnavailable
from workers.db.rows import now
from workers.tenancy.admission import Scope
from workers.tenancy.records import Limits

log = logging.getLogger("switchboard.tenancy")

GLOBAL_SCOPE: Final = "global"
RESEED_EVERY_S: Final = 5.0


class ProxyBudget:
    def __init__(self, max_budget: float, budget_duration: str | None) -> None:
        self.limits = Limits(max_budget=max_budget, budget_duration=budget_duration)
        self.scope = Scope(GLOBAL_SCOPE, self.limits)
        # Set once the first reading was tried: admission waits for it, so no request of
        # a fresh front door seeds a lost counter with nothing.
        self.is_read = asyncio.Event()

    def since(self, moment: datetime) -> datetime | None:
        """Where the spend that seeds the counter starts: one period back, or ever."""
        duration = self.limits.budget_duration
        if not duration:
            return None
        return moment - (durations.after(moment, duration) - moment)

    async def reseed(self, database: Database) -> float:
        """Read the proxy's spend from the database into the scope's seed."""
        async with database.transaction() as conn:
            spent = await resets.proxy_spend(conn, self.since(now()))
        self.scope = Scope(GLOBAL_SCOPE, self.limits, spent)
        return spent

    async def follow(self, database: Database) -> None:
        """Keep the seed current for as long as the front door runs (a supervised loop); a
        database outage keeps the last figure."""
        while True:
            try:
                await self.reseed(database)
            except DatabaseUnavailable as exc:
                log.warning("could not read the proxy's spend: %s", exc)
            self.is_read.set()
            await asyncio.sleep(RESEED_EVERY_S)
