"""spend report indexes: one per group column, led by the group and the day, with the measures

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 04:00:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MEASURES = ["spend", "prompt_tokens", "completion_tokens", "api_requests"]
DAILY_GROUPS = ["api_key", "user_id", "team_id", "organization_id", "model_group"]


def upgrade() -> None:
    for column in DAILY_GROUPS:
        op.create_index(
            f"ix_daily_spend_report_{column}", "daily_spend", [column, "day", *MEASURES]
        )
    op.create_index("ix_daily_tag_spend_report_tag", "daily_tag_spend", ["tag", "day", *MEASURES])


def downgrade() -> None:
    op.drop_index("ix_daily_tag_spend_report_tag", table_name="daily_tag_spend")
    for column in DAILY_GROUPS:
        op.drop_index(f"ix_daily_spend_report_{column}", table_name="daily_spend")
