"""Spend per key over aligned blocks of days (tables.key_spend_blocks): the ledger's write
and the reads that rank keys over a range of days (issue #21).

A block of level L is the 2**L days from a day number (days since 1970-01-01) divisible by
2**L, as in a segment tree. A day lies in one block per level, so a request is added to
LEVELS rows; a range of days is the union of at most two blocks per level (`cover`), so
ranking 10,000 keys over 30 days reads about four index entries per key (40,000), where
daily_spend holds one per key, day and model group (900,000 at the benchmark's size) and an
index led by the key read the key's whole history.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workers.db import rows
from workers.db.tables import REPORT_MEASURES, key_spend_blocks

EPOCH = date(1970, 1, 1)
# Blocks of 1 to 256 days: a year is a few top blocks and edges, and a write is 9 rows.
LEVELS = 9
MEASURES = (
    "prompt_tokens",
    "completion_tokens",
    "spend",
    "api_requests",
    "successful_requests",
    "failed_requests",
)


def day_number(day: str) -> int:
    return (date.fromisoformat(day) - EPOCH).days


def day_of(number: int) -> str:
    return (EPOCH + timedelta(days=number)).isoformat()


def blocks_of(day: str) -> list[tuple[int, str]]:
    """The block of each level that holds `day`: (level, its first day)."""
    number = day_number(day)
    return [(level, day_of(number - number % (1 << level))) for level in range(LEVELS)]


def cover(first_day: str, last_day: str) -> list[tuple[int, str]]:
    """The fewest aligned blocks whose union is the days from `first_day` to `last_day`
    (both included): from the first day, the biggest block that starts there and fits."""
    start, last = day_number(first_day), day_number(last_day)
    found = []
    while start <= last:
        level = 0
        while (
            level + 1 < LEVELS
            and start % (1 << (level + 1)) == 0
            and start + (1 << (level + 1)) - 1 <= last
        ):
            level += 1
        found.append((level, day_of(start)))
        start += 1 << level
    return found


def covering(first_day: str, last_day: str) -> sa.Subquery:
    """The rows of the blocks that cover the range (api_key and the report's measures), one
    index search each, as UNION ALL: PostgreSQL then reads each block from the covering
    index alone, where an OR of the blocks made it fetch every row from the table."""
    table = key_spend_blocks
    columns = [table.c.api_key, *(table.c[name] for name in REPORT_MEASURES)]
    parts = [
        sa.select(*columns).where(table.c.level == level, table.c.day == first)
        for level, first in cover(first_day, last_day)
    ] or [sa.select(*columns).where(sa.false())]
    if len(parts) == 1:
        return parts[0].subquery("blocks")
    return sa.union_all(*parts).subquery("blocks")


async def add(conn: AsyncConnection, sums: Mapping[tuple[str, str], Mapping[str, Any]]) -> None:
    """Add each (day, key)'s measures to the key's blocks holding that day: one statement
    executed with every row's parameters (one round trip per batch of rows)."""
    table = key_spend_blocks
    # A key's days in one batch share their bigger blocks: one row each, summed here.
    blocks: dict[tuple[int, str, str], dict[str, Any]] = {}
    for (day, key), measures in sums.items():
        for level, first in blocks_of(day):
            found = blocks.get((level, first, key))
            if found is None:
                blocks[(level, first, key)] = {m: measures[m] for m in MEASURES}
            else:
                for m in MEASURES:
                    found[m] += measures[m]
    if not blocks:
        return
    stamp = rows.now()
    params = [
        {"level": level, "day": first, "api_key": key, **measures, "updated_at": stamp}
        for (level, first, key), measures in blocks.items()
    ]
    insert = rows.dialect_insert(conn, table)
    changes: dict[str, Any] = {name: table.c[name] + insert.excluded[name] for name in MEASURES}
    changes["updated_at"] = insert.excluded.updated_at
    statement = insert.on_conflict_do_update(
        index_elements=[table.c.level, table.c.day, table.c.api_key], set_=changes
    )
    await conn.execute(statement, params)
