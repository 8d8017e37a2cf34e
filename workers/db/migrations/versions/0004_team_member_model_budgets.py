"""teams.team_member_model_max_budget: per-model budgets every member of a team gets
(LiteLLM's field of that name)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 20:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    json = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
    # Nullable: existing teams have none, and adding a NOT NULL JSON column would need a
    # default each dialect spells its own way.
    op.add_column("teams", sa.Column("team_member_model_max_budget", json, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("teams") as batch:
        batch.drop_column("team_member_model_max_budget")
