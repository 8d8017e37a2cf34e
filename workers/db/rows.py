"""Row-level helpers every query module shares: rows as dicts with UTC times, insert/update/
delete with RETURNING, pages with a total, and the dialect's INSERT for ON CONFLICT.

Only SQLAlchemy expressions: values always travel as bound parameters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

Row = dict[str, Any]
MAX_PAGE_SIZE = 1000


def now() -> datetime:
    return datetime.now(UTC)


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands times back without a zone; every stored time is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def as_row(mapping: Mapping[Any, Any]) -> Row:
    return {k: utc(v) if isinstance(v, datetime) else v for k, v in mapping.items()}


async def fetch_one(conn: AsyncConnection, statement: sa.Executable) -> Row | None:
    found = (await conn.execute(statement)).mappings().first()
    return None if found is None else as_row(found)


async def fetch_all(conn: AsyncConnection, statement: sa.Executable) -> list[Row]:
    return [as_row(found) for found in (await conn.execute(statement)).mappings()]


async def scalar(conn: AsyncConnection, statement: sa.Executable) -> Any:
    return (await conn.execute(statement)).scalar()


def _key(table: sa.Table) -> sa.Column[Any]:
    (column,) = table.primary_key.columns
    return column


async def insert(conn: AsyncConnection, table: sa.Table, values: Mapping[str, Any]) -> Row:
    created = await fetch_one(conn, sa.insert(table).values(**values).returning(*table.c))
    assert created is not None
    return created


async def get(
    conn: AsyncConnection, table: sa.Table, key: Any, *, for_update: bool = False
) -> Row | None:
    statement = sa.select(table).where(_key(table) == key)
    if for_update:  # PostgreSQL locks the row; SQLite's BEGIN IMMEDIATE already serializes
        statement = statement.with_for_update()
    return await fetch_one(conn, statement)


async def update(
    conn: AsyncConnection, table: sa.Table, key: Any, values: Mapping[str, Any]
) -> Row | None:
    statement = sa.update(table).where(_key(table) == key).values(**values)
    return await fetch_one(conn, statement.returning(*table.c))


async def delete(conn: AsyncConnection, table: sa.Table, keys: Iterable[Any]) -> list[Row]:
    statement = sa.delete(table).where(_key(table).in_(list(keys)))
    return await fetch_all(conn, statement.returning(*table.c))


async def page(
    conn: AsyncConnection,
    statement: sa.Select[Any],
    order_by: Sequence[sa.ColumnElement[Any]],
    *,
    number: int = 1,
    size: int = 100,
) -> tuple[list[Row], int]:
    """Page `number` (from 1) of `size` rows, and how many rows there are in all."""
    size = max(1, min(size, MAX_PAGE_SIZE))
    total = await scalar(conn, sa.select(sa.func.count()).select_from(statement.subquery()))
    rows = await fetch_all(
        conn, statement.order_by(*order_by).offset((max(number, 1) - 1) * size).limit(size)
    )
    return rows, int(total or 0)


def dialect_insert(conn: AsyncConnection, table: sa.Table) -> Any:
    """The INSERT that knows ON CONFLICT on this connection's database (both spell it alike)."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
