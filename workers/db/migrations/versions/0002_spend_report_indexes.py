"""spend report: daily_group_spend (days per team, user, organization, model group), backfilled
from daily_spend, and indexes that sum keys and tags from the index alone

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 04:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MEASURES = ["spend", "prompt_tokens", "completion_tokens", "api_requests"]
COUNTS = ["successful_requests", "failed_requests"]
# group_by -> its column in daily_spend
GROUP_COLUMNS = {
    "team": "team_id",
    "user": "user_id",
    "organization": "organization_id",
    "model": "model_group",
}


def upgrade() -> None:
    op.create_table(
        "daily_group_spend",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("group_by", sa.String(length=16), nullable=False),
        sa.Column("group_id", sa.String(length=255), nullable=False),
        sa.Column("model_group", sa.String(length=255), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("spend", sa.Float(precision=53), nullable=False),
        sa.Column("api_requests", sa.BigInteger(), nullable=False),
        sa.Column("successful_requests", sa.BigInteger(), nullable=False),
        sa.Column("failed_requests", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daily_group_spend")),
        sa.UniqueConstraint(
            "group_by", "day", "group_id", "model_group", name="uq_daily_group_spend_row"
        ),
    )
    op.create_index("ix_daily_spend_report_api_key", "daily_spend", ["api_key", "day", *MEASURES])
    op.create_index("ix_daily_tag_spend_report_tag", "daily_tag_spend", ["tag", "day", *MEASURES])
    backfill()


def backfill() -> None:
    """The days the ledger wrote before this table existed, summed from daily_spend."""
    daily = sa.table(
        "daily_spend",
        *(sa.column(name) for name in ("day", *GROUP_COLUMNS.values(), *MEASURES, *COUNTS)),
    )
    target = sa.table(
        "daily_group_spend",
        *(sa.column(n) for n in ("day", "group_by", "group_id", "model_group", *MEASURES, *COUNTS)),
        sa.column("updated_at"),
    )
    for group_by, column in GROUP_COLUMNS.items():
        sums = [sa.func.sum(daily.c[name]) for name in (*MEASURES, *COUNTS)]
        select = sa.select(
            daily.c.day,
            sa.literal(group_by),
            daily.c[column],
            daily.c.model_group,
            *sums,
            sa.func.current_timestamp(),
        ).group_by(daily.c.day, daily.c[column], daily.c.model_group)
        names = ["day", "group_by", "group_id", "model_group", *MEASURES, *COUNTS, "updated_at"]
        op.execute(sa.insert(target).from_select(names, select))


def downgrade() -> None:
    op.drop_index("ix_daily_tag_spend_report_tag", table_name="daily_tag_spend")
    op.drop_index("ix_daily_spend_report_api_key", table_name="daily_spend")
    op.drop_table("daily_group_spend")
