"""spend report: key_spend_blocks (spend per key over aligned blocks of 1 to 256 days),
backfilled from daily_spend, so ranking keys over a range reads a few rows per key

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 05:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MEASURES = ["spend", "prompt_tokens", "completion_tokens", "api_requests"]
COUNTS = ["successful_requests", "failed_requests"]
LEVELS = 9  # workers/db/key_blocks.py: blocks of 2**0 to 2**8 days


def upgrade() -> None:
    op.create_table(
        "key_spend_blocks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("api_key", sa.String(length=64), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("spend", sa.Float(precision=53), nullable=False),
        sa.Column("api_requests", sa.BigInteger(), nullable=False),
        sa.Column("successful_requests", sa.BigInteger(), nullable=False),
        sa.Column("failed_requests", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_spend_blocks")),
        sa.UniqueConstraint("level", "day", "api_key", name="uq_key_spend_blocks_row"),
    )
    op.create_index(
        "ix_key_spend_blocks_report", "key_spend_blocks", ["level", "day", "api_key", *MEASURES]
    )
    backfill()


def _block_start(day: sa.ColumnElement[str], size: int) -> sa.ColumnElement[str]:
    """The first day (YYYY-MM-DD) of the `size`-day block holding `day`, in SQL: blocks are
    aligned on day numbers since 1970-01-01 (julian day 2440587.5)."""
    if op.get_bind().dialect.name == "postgresql":
        as_date = sa.cast(day, sa.Date)
        days = as_date - sa.cast(sa.literal("1970-01-01"), sa.Date)
        return sa.func.to_char(as_date - days % size, "YYYY-MM-DD")
    number = sa.cast(sa.func.julianday(day, type_=sa.Float) - 2440587.5, sa.Integer)
    return sa.func.date(2440587.5 + number - number % size)


def backfill() -> None:
    """The days the ledger wrote before this table existed, summed from daily_spend."""
    daily = sa.table("daily_spend", *(sa.column(n) for n in ("day", "api_key", *MEASURES, *COUNTS)))
    target = sa.table(
        "key_spend_blocks",
        *(sa.column(n) for n in ("level", "day", "api_key", *MEASURES, *COUNTS, "updated_at")),
    )
    for level in range(LEVELS):
        start = _block_start(daily.c.day, 1 << level)
        select = sa.select(
            sa.literal(level),
            start,
            daily.c.api_key,
            *(sa.func.sum(daily.c[name]) for name in (*MEASURES, *COUNTS)),
            sa.func.current_timestamp(),
        ).group_by(start, daily.c.api_key)
        names = ["level", "day", "api_key", *MEASURES, *COUNTS, "updated_at"]
        op.execute(sa.insert(target).from_select(names, select))


def downgrade() -> None:
    op.drop_index("ix_key_spend_blocks_report", table_name="key_spend_blocks")
    op.drop_table("key_spend_blocks")
