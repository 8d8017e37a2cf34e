"""Spend: the ledger's write (`record_spend`) and the reads behind /spend/logs and
/global/spend/report.

`record_spend` is what the ledger consumer group (issue #17, phase 17b) calls with a batch of
finished requests. It is idempotent by request id: the spend log insert skips ids already
present (ON CONFLICT DO NOTHING ... RETURNING), and only the rows it did insert move the
totals (key, user, team, member, organization, end user) and the daily aggregates, all in
the caller's transaction. A redelivered batch, or one replayed after a crash between the
commit and the ack, changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from workers.db import key_blocks, rows
from workers.db.plain import SUCCESS as SUCCESS  # re-exported (`X as X`): once defined here
from workers.db.plain import SpendRecord as SpendRecord
from workers.db.rows import Row
from workers.db.tables import (
    api_keys,
    daily_group_spend,
    daily_spend,
    daily_tag_spend,
    end_users,
    organizations,
    spend_logs,
    team_memberships,
    teams,
    users,
)

# Rows a statement inserts. SQLAlchemy binds a statement's rows on the event loop, in one
# go, before the statement goes to the driver's thread: 500 rows held the front door's loop
# ~5 ms, and the requests arriving meanwhile waited (issue #22: a ledger batch's start was
# beside 8-25% of the slowest 1% at c=1). 50 holds it a tenth as long at a time; the
# extra statements cost little at c=64 (docs/performance.md).
INSERT_CHUNK = 50


def _log_row(record: SpendRecord) -> dict[str, Any]:
    return {
        "request_id": record.request_id,
        "call_type": record.call_type,
        "api_key": record.api_key,
        "key_alias": record.key_alias,
        "user_id": record.user_id,
        "team_id": record.team_id,
        "organization_id": record.organization_id,
        "end_user": record.end_user,
        "model": record.model,
        "model_group": record.model_group,
        "deployment": record.deployment,
        "provider": record.provider,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "total_tokens": record.prompt_tokens + record.completion_tokens,
        "spend": record.spend,
        "start_time": record.start_time,
        "end_time": record.end_time,
        "status": record.status,
        "request_tags": list(record.tags),
        "batch_id": record.batch_id,
        "metadata": record.metadata,
    }


async def record_spend(conn: AsyncConnection, records: Sequence[SpendRecord]) -> int:
    """Write the spend of `records`; returns how many were new (the rest were already in)."""
    unique = list({record.request_id: record for record in reversed(records)}.values())
    if not unique:
        return 0
    new_ids: set[str] = set()
    # One statement executed with many parameter sets: SQLAlchemy compiles it once (and
    # caches it), then sends the rows in batches ("insertmanyvalues"). Building a VALUES
    # list of the rows instead compiled a new statement per batch, about a millisecond
    # of CPU per row (benchmarks/tenancy.py's profile).
    insert = (
        rows.dialect_insert(conn, spend_logs)
        .on_conflict_do_nothing(index_elements=[spend_logs.c.request_id])
        .returning(spend_logs.c.request_id)
    )
    for start in range(0, len(unique), INSERT_CHUNK):
        chunk = [_log_row(r) for r in unique[start : start + INSERT_CHUNK]]
        inserted = await conn.execute(insert, chunk)
        new_ids.update(inserted.scalars())
    fresh = [record for record in unique if record.request_id in new_ids]
    if fresh:
        await _add_to_totals(conn, fresh)
        await _add_to_daily(conn, fresh)
    return len(fresh)


async def _add_to_totals(conn: AsyncConnection, fresh: Sequence[SpendRecord]) -> None:
    owners: list[tuple[sa.Table, str, Any]] = [
        (api_keys, "token", lambda r: r.api_key),
        (users, "user_id", lambda r: r.user_id),
        (teams, "team_id", lambda r: r.team_id),
        (organizations, "organization_id", lambda r: r.organization_id),
    ]
    for table, column, owner_of in owners:
        for owner, by_model in _sum_by_owner(fresh, owner_of).items():
            await _add_spend(conn, table, table.c[column] == owner, by_model)
    for (team_id, user_id), by_model in _sum_by_owner(
        fresh, lambda r: (r.team_id, r.user_id) if r.team_id and r.user_id else None
    ).items():
        member = sa.and_(
            team_memberships.c.team_id == team_id, team_memberships.c.user_id == user_id
        )
        await conn.execute(
            sa.update(team_memberships)
            .where(member)
            .values(spend=team_memberships.c.spend + sum(by_model.values()))
        )
    await _add_end_user_spend(conn, fresh)
    last_active = max(record.end_time for record in fresh)
    await conn.execute(
        sa.update(api_keys)
        .where(api_keys.c.token.in_({record.api_key for record in fresh}))
        .values(last_active=last_active)
    )


def _sum_by_owner(records: Iterable[SpendRecord], owner_of: Any) -> dict[Any, dict[str, float]]:
    sums: dict[Any, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for record in records:
        owner = owner_of(record)
        if owner:
            sums[owner][record.model_group] += record.spend
    return sums


async def _add_spend(
    conn: AsyncConnection,
    table: sa.Table,
    where: sa.ColumnElement[bool],
    by_model: dict[str, float],
) -> None:
    # The total moves in SQL (no lost update); the per-model map is read under the row lock
    # (FOR UPDATE on PostgreSQL; SQLite's write lock is held since BEGIN IMMEDIATE).
    current = await rows.fetch_one(
        conn, sa.select(table.c.model_spend).where(where).with_for_update()
    )
    if current is None:
        return  # spend of an owner that is gone: the log row keeps it
    model_spend = dict(current["model_spend"] or {})
    for model, amount in by_model.items():
        model_spend[model] = model_spend.get(model, 0.0) + amount
    await conn.execute(
        sa.update(table)
        .where(where)
        .values(spend=table.c.spend + sum(by_model.values()), model_spend=model_spend)
    )


async def _add_end_user_spend(conn: AsyncConnection, fresh: Sequence[SpendRecord]) -> None:
    # LiteLLM creates a customer the first time a request names it.
    for end_user, by_model in _sum_by_owner(fresh, lambda r: r.end_user).items():
        stamp = rows.now()
        insert = rows.dialect_insert(conn, end_users).values(
            user_id=end_user,
            spend=sum(by_model.values()),
            blocked=False,
            created_at=stamp,
            updated_at=stamp,
        )
        await conn.execute(
            insert.on_conflict_do_update(
                index_elements=[end_users.c.user_id],
                set_={"spend": end_users.c.spend + insert.excluded.spend},
            )
        )


def _measures(records: Iterable[SpendRecord]) -> dict[str, Any]:
    records = list(records)
    successes = sum(1 for r in records if r.status == SUCCESS)
    return {
        "prompt_tokens": sum(r.prompt_tokens for r in records),
        "completion_tokens": sum(r.completion_tokens for r in records),
        "spend": sum(r.spend for r in records),
        "api_requests": len(records),
        "successful_requests": successes,
        "failed_requests": len(records) - successes,
        "updated_at": rows.now(),
    }


MEASURES = ("prompt_tokens", "completion_tokens", "spend", "api_requests")
COUNTS = ("successful_requests", "failed_requests")


async def _add_to_daily(conn: AsyncConnection, fresh: Sequence[SpendRecord]) -> None:
    by_row: dict[tuple[str, ...], list[SpendRecord]] = defaultdict(list)
    by_tag: dict[tuple[str, ...], list[SpendRecord]] = defaultdict(list)
    by_key_day: dict[tuple[str, str], list[SpendRecord]] = defaultdict(list)
    for record in fresh:
        day = _utc_day(record.start_time)
        owners = (record.user_id or "", record.team_id or "", record.organization_id or "")
        key = (day, record.api_key, *owners, record.model_group, record.provider or "")
        by_row[key].append(record)
        by_key_day[(day, record.api_key)].append(record)
        for tag in dict.fromkeys(record.tags):
            by_tag[(day, tag, record.api_key, record.model_group)].append(record)
    row_columns = ("day", "api_key", "user_id", "team_id", "organization_id", "model_group")
    for row_key, group in by_row.items():
        values = dict(zip((*row_columns, "provider"), row_key, strict=True))
        await _upsert_daily(conn, daily_spend, "uq_daily_spend_row", values, group)
    await _add_to_daily_groups(conn, by_row)
    await key_blocks.add(conn, {k: _measures(group) for k, group in by_key_day.items()})
    for tag_key, group in by_tag.items():
        values = dict(zip(("day", "tag", "api_key", "model_group"), tag_key, strict=True))
        await _upsert_daily(conn, daily_tag_spend, "uq_daily_tag_spend_row", values, group)


# group_by -> the place of its value in a daily_spend row's key (see _add_to_daily)
ROLLED_UP = {"user": 2, "team": 3, "organization": 4, "model": 5}


async def _add_to_daily_groups(
    conn: AsyncConnection, by_row: dict[tuple[str, ...], list[SpendRecord]]
) -> None:
    """The same days summed per team, user, organization and model group: the rows the
    spend report reads for those (tables.daily_group_spend)."""
    by_group: dict[tuple[str, ...], list[SpendRecord]] = defaultdict(list)
    for row_key, group in by_row.items():
        for group_by, place in ROLLED_UP.items():
            by_group[(row_key[0], group_by, row_key[place], row_key[5])].extend(group)
    names = ("day", "group_by", "group_id", "model_group")
    for group_key, group in by_group.items():
        values = dict(zip(names, group_key, strict=True))
        await _upsert_daily(conn, daily_group_spend, "uq_daily_group_spend_row", values, group)


def _utc_day(moment: datetime) -> str:
    """The UTC day of `moment` (a time without a zone is taken as UTC)."""
    aware = rows.utc(moment)
    assert aware is not None
    return aware.astimezone(UTC).date().isoformat()


async def _upsert_daily(
    conn: AsyncConnection,
    table: sa.Table,
    constraint: str,
    dims: dict[str, str],
    group: list[SpendRecord],
) -> None:
    insert = rows.dialect_insert(conn, table).values(**dims, **_measures(group))
    unique = next(c for c in table.constraints if c.name == constraint)
    changes: dict[str, Any] = {name: table.c[name] + insert.excluded[name] for name in MEASURES}
    changes.update({name: table.c[name] + insert.excluded[name] for name in COUNTS})
    changes["updated_at"] = insert.excluded.updated_at
    assert isinstance(unique, sa.UniqueConstraint)
    await conn.execute(
        insert.on_conflict_do_update(index_elements=list(unique.columns), set_=changes)
    )


async def logs(
    conn: AsyncConnection,
    *,
    api_key: str | None = None,
    user_id: str | None = None,
    team_ids: Iterable[str] | None = None,
    request_id: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 100,
) -> list[Row]:
    statement = sa.select(spend_logs)
    filters = {"api_key": api_key, "user_id": user_id, "request_id": request_id}
    for column, value in filters.items():
        if value is not None:
            statement = statement.where(spend_logs.c[column] == value)
    if team_ids is not None:
        statement = statement.where(spend_logs.c.team_id.in_(list(team_ids)))
    if start is not None:
        statement = statement.where(spend_logs.c.start_time >= start)
    if end is not None:
        statement = statement.where(spend_logs.c.start_time < end)
    statement = statement.order_by(spend_logs.c.start_time.desc(), spend_logs.c.request_id)
    return await rows.fetch_all(conn, statement.limit(max(1, min(limit, rows.MAX_PAGE_SIZE))))


# The daily table and column each report groups by, and the rows of the table it reads.
GROUPS: dict[str, tuple[sa.Table, str, tuple[sa.ColumnElement[bool], ...]]] = {
    "api_key": (daily_spend, "api_key", ()),
    "tag": (daily_tag_spend, "tag", ()),
    **{
        group_by: (daily_group_spend, "group_id", (daily_group_spend.c.group_by == group_by,))
        for group_by in ROLLED_UP
    },
}


async def report(
    conn: AsyncConnection,
    group_by: str,
    *,
    first_day: str,
    last_day: str,
) -> list[Row]:
    """Spend per day x group x model group between two days (YYYY-MM-DD, both included)."""
    table, column, rows_of = GROUPS[group_by]
    statement = (
        sa.select(
            table.c.day,
            table.c[column].label("group"),
            table.c.model_group,
            # PostgreSQL sums BIGINT as NUMERIC; cast back so callers get ints, not Decimals.
            *(
                sa.cast(sa.func.sum(table.c[name]), table.c[name].type).label(name)
                for name in MEASURES
            ),
        )
        .where(table.c.day >= first_day, table.c.day <= last_day, *rows_of)
        .group_by(table.c.day, table.c[column], table.c.model_group)
        .order_by(table.c.day, table.c[column], table.c.model_group)
    )
    return await rows.fetch_all(conn, statement)


def _sums(table: sa.FromClause) -> list[sa.ColumnElement[Any]]:
    # PostgreSQL sums BIGINT as NUMERIC; cast back so callers get ints, not Decimals.
    return [
        sa.cast(sa.func.sum(table.c[name]), table.c[name].type).label(name) for name in MEASURES
    ]


async def totals(
    conn: AsyncConnection, group_by: str, *, first_day: str, last_day: str
) -> list[Row]:
    """Spend per group between two days (both included), biggest first: keys from the blocks
    of days that cover the range (key_blocks.py), the rest from daily_group_spend."""
    table, column, where = _every_group(group_by, first_day, last_day)
    spent = sa.func.sum(table.c.spend)
    statement = (
        sa.select(table.c[column].label("group"), *_sums(table))
        .where(*where)
        .group_by(table.c[column])
        .order_by(spent.desc(), table.c[column])
    )
    return await rows.fetch_all(conn, statement)


async def rank(
    conn: AsyncConnection, group_by: str, top_n: int, *, first_day: str, last_day: str
) -> tuple[list[str], int]:
    """The `top_n` groups that spent most between two days, biggest first, and how many
    groups spent: one pass over them all that sums the spend alone and hands back N rows,
    not one per key."""
    table, column, where = _every_group(group_by, first_day, last_day)
    spent = sa.func.sum(table.c.spend)
    statement = (
        sa.select(table.c[column], sa.func.count().over())  # over the groups, before LIMIT
        .where(*where)
        .group_by(table.c[column])
        .order_by(spent.desc(), table.c[column])
        .limit(top_n)
    )
    found = (await conn.execute(statement)).all()
    return [group for group, _ in found], found[0][1] if found else 0


async def report_of_groups(
    conn: AsyncConnection,
    group_by: str,
    groups: Sequence[str],
    *,
    first_day: str,
    last_day: str,
) -> tuple[list[Row], list[Row]]:
    """Spend per day x group x model group for `groups` only, and per day x model group for
    every group (what the others spent is the second less the first). Keys come from their
    index, the rest from daily_group_spend; every group's days are the model rows there
    (tags have their own: a request counts once in each of its tags)."""
    table, column, rows_of = GROUPS[group_by]
    named = (
        sa.select(table.c.day, table.c[column].label("group"), table.c.model_group, *_sums(table))
        .where(table.c[column].in_(list(groups)), *_window(table, first_day, last_day), *rows_of)
        .group_by(table.c[column], table.c.day, table.c.model_group)
    )
    every_table, _, every_rows = GROUPS["tag" if group_by == "tag" else "model"]
    every = (
        sa.select(every_table.c.day, every_table.c.model_group, *_sums(every_table))
        .where(*_window(every_table, first_day, last_day), *every_rows)
        .group_by(every_table.c.model_group, every_table.c.day)
    )
    found = await rows.fetch_all(conn, named) if groups else []
    return found, await rows.fetch_all(conn, every)


def _every_group(
    group_by: str, first_day: str, last_day: str
) -> tuple[sa.FromClause, str, tuple[sa.ColumnElement[bool], ...]]:
    """Where every group's spend over the range is summed from: keys from the few blocks of
    days that cover the range (workers/db/key_blocks.py), the rest from their daily rows."""
    if group_by == "api_key":
        return key_blocks.covering(first_day, last_day), "api_key", ()
    table, column, rows_of = GROUPS[group_by]
    return table, column, (*_window(table, first_day, last_day), *rows_of)


def _window(table: sa.Table, first_day: str, last_day: str) -> tuple[sa.ColumnElement[Any], ...]:
    """The days from `first_day` to `last_day`."""
    return (table.c.day >= first_day, table.c.day <= last_day)
