"""initial schema: keys, users, teams, budgets, spend, audit

Revision ID: 0001
Revises:
Create Date: 2026-12-05 18:25:29.335939
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The JSON type of tables.py: JSONB on PostgreSQL.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_by", sa.String(length=255), nullable=False),
        sa.Column("changed_by_key", sa.String(length=64), nullable=True),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=False),
        sa.Column("before_value", JSON, nullable=True),
        sa.Column("after_value", JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_created_at"), "audit_log", ["created_at"], unique=False)

    op.create_table(
        "budgets",
        sa.Column("budget_id", sa.String(length=255), nullable=False),
        sa.Column("max_budget", sa.Float(precision=53), nullable=True),
        sa.Column("soft_budget", sa.Float(precision=53), nullable=True),
        sa.Column("budget_duration", sa.String(length=32), nullable=True),
        sa.Column("budget_reset_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("tpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("max_parallel_requests", sa.Integer(), nullable=True),
        sa.Column("model_max_budget", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
        sa.PrimaryKeyConstraint("budget_id", name=op.f("pk_budgets")),
    )
    op.create_table(
        "daily_spend",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("api_key", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("team_id", sa.String(length=255), nullable=False),
        sa.Column("organization_id", sa.String(length=255), nullable=False),
        sa.Column("model_group", sa.String(length=255), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("spend", sa.Float(precision=53), nullable=False),
        sa.Column("api_requests", sa.BigInteger(), nullable=False),
        sa.Column("successful_requests", sa.BigInteger(), nullable=False),
        sa.Column("failed_requests", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daily_spend")),
        sa.UniqueConstraint(
            "day",
            "api_key",
            "user_id",
            "team_id",
            "organization_id",
            "model_group",
            "provider",
            name="uq_daily_spend_row",
        ),
    )
    op.create_index(op.f("ix_daily_spend_day"), "daily_spend", ["day"], unique=False)

    op.create_table(
        "daily_tag_spend",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("tag", sa.String(length=255), nullable=False),
        sa.Column("api_key", sa.String(length=64), nullable=False),
        sa.Column("model_group", sa.String(length=255), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("spend", sa.Float(precision=53), nullable=False),
        sa.Column("api_requests", sa.BigInteger(), nullable=False),
        sa.Column("successful_requests", sa.BigInteger(), nullable=False),
        sa.Column("failed_requests", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daily_tag_spend")),
        sa.UniqueConstraint("day", "tag", "api_key", "model_group", name="uq_daily_tag_spend_row"),
    )
    op.create_index(op.f("ix_daily_tag_spend_day"), "daily_tag_spend", ["day"], unique=False)

    op.create_table(
        "spend_logs",
        sa.Column("request_id", sa.String(length=255), nullable=False),
        sa.Column("call_type", sa.String(length=64), nullable=False),
        sa.Column("api_key", sa.String(length=64), nullable=False),
        sa.Column("key_alias", sa.String(length=255), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("team_id", sa.String(length=255), nullable=True),
        sa.Column("organization_id", sa.String(length=255), nullable=True),
        sa.Column("end_user", sa.String(length=255), nullable=True),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("model_group", sa.String(length=255), nullable=False),
        sa.Column("deployment", sa.String(length=255), nullable=True),
        sa.Column("provider", sa.String(length=64), nullable=True),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False),
        sa.Column("spend", sa.Float(precision=53), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("request_tags", JSON, nullable=False),
        sa.Column("batch_id", sa.String(length=255), nullable=True),
        sa.Column("metadata", JSON, nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_spend_logs")),
    )
    op.create_index(op.f("ix_spend_logs_api_key"), "spend_logs", ["api_key"], unique=False)
    op.create_index(op.f("ix_spend_logs_end_user"), "spend_logs", ["end_user"], unique=False)
    op.create_index(op.f("ix_spend_logs_start_time"), "spend_logs", ["start_time"], unique=False)
    op.create_index(op.f("ix_spend_logs_team_id"), "spend_logs", ["team_id"], unique=False)
    op.create_index(op.f("ix_spend_logs_user_id"), "spend_logs", ["user_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("key_name", sa.String(length=32), nullable=False),
        sa.Column("key_alias", sa.String(length=255), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("team_id", sa.String(length=255), nullable=True),
        sa.Column("organization_id", sa.String(length=255), nullable=True),
        sa.Column("budget_id", sa.String(length=255), nullable=True),
        sa.Column("models", JSON, nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("allowed_routes", JSON, nullable=False),
        sa.Column("max_budget", sa.Float(precision=53), nullable=True),
        sa.Column("soft_budget", sa.Float(precision=53), nullable=True),
        sa.Column("budget_duration", sa.String(length=32), nullable=True),
        sa.Column("budget_reset_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("tpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("max_parallel_requests", sa.Integer(), nullable=True),
        sa.Column("model_max_budget", JSON, nullable=False),
        sa.Column("spend", sa.Float(precision=53), nullable=False),
        sa.Column("model_spend", JSON, nullable=False),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=True),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("last_active", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["budget_id"],
            ["budgets.budget_id"],
            name=op.f("fk_api_keys_budget_id_budgets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_alias", name=op.f("uq_api_keys_key_alias")),
    )
    op.create_index(
        op.f("ix_api_keys_organization_id"), "api_keys", ["organization_id"], unique=False
    )
    op.create_index(op.f("ix_api_keys_team_id"), "api_keys", ["team_id"], unique=False)
    op.create_index(op.f("ix_api_keys_user_id"), "api_keys", ["user_id"], unique=False)

    op.create_table(
        "end_users",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("alias", sa.String(length=255), nullable=True),
        sa.Column("budget_id", sa.String(length=255), nullable=True),
        sa.Column("allowed_model_region", sa.String(length=8), nullable=True),
        sa.Column("default_model", sa.String(length=255), nullable=True),
        sa.Column("spend", sa.Float(precision=53), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["budget_id"],
            ["budgets.budget_id"],
            name=op.f("fk_end_users_budget_id_budgets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_end_users")),
    )
    op.create_table(
        "organizations",
        sa.Column("organization_id", sa.String(length=255), nullable=False),
        sa.Column("organization_alias", sa.String(length=255), nullable=False),
        sa.Column("budget_id", sa.String(length=255), nullable=True),
        sa.Column("models", JSON, nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("spend", sa.Float(precision=53), nullable=False),
        sa.Column("model_spend", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["budget_id"],
            ["budgets.budget_id"],
            name=op.f("fk_organizations_budget_id_budgets"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_organizations")),
    )
    op.create_table(
        "teams",
        sa.Column("team_id", sa.String(length=255), nullable=False),
        sa.Column("team_alias", sa.String(length=255), nullable=True),
        sa.Column("organization_id", sa.String(length=255), nullable=True),
        sa.Column("models", JSON, nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("tags", JSON, nullable=False),
        sa.Column("max_budget", sa.Float(precision=53), nullable=True),
        sa.Column("soft_budget", sa.Float(precision=53), nullable=True),
        sa.Column("budget_duration", sa.String(length=32), nullable=True),
        sa.Column("budget_reset_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("tpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("max_parallel_requests", sa.Integer(), nullable=True),
        sa.Column("model_max_budget", JSON, nullable=False),
        sa.Column("spend", sa.Float(precision=53), nullable=False),
        sa.Column("model_spend", JSON, nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.organization_id"],
            name=op.f("fk_teams_organization_id_organizations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_teams")),
    )
    op.create_index(op.f("ix_teams_organization_id"), "teams", ["organization_id"], unique=False)
    op.create_index(op.f("ix_teams_team_alias"), "teams", ["team_alias"], unique=False)

    op.create_table(
        "users",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("user_alias", sa.String(length=255), nullable=True),
        sa.Column("user_email", sa.String(length=320), nullable=True),
        sa.Column("user_role", sa.String(length=32), nullable=False),
        sa.Column("organization_id", sa.String(length=255), nullable=True),
        sa.Column("models", JSON, nullable=False),
        sa.Column("metadata", JSON, nullable=False),
        sa.Column("max_budget", sa.Float(precision=53), nullable=True),
        sa.Column("soft_budget", sa.Float(precision=53), nullable=True),
        sa.Column("budget_duration", sa.String(length=32), nullable=True),
        sa.Column("budget_reset_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("tpm_limit", sa.BigInteger(), nullable=True),
        sa.Column("max_parallel_requests", sa.Integer(), nullable=True),
        sa.Column("model_max_budget", JSON, nullable=False),
        sa.Column("spend", sa.Float(precision=53), nullable=False),
        sa.Column("model_spend", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.organization_id"],
            name=op.f("fk_users_organization_id_organizations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_users")),
    )
    op.create_index(op.f("ix_users_user_email"), "users", ["user_email"], unique=False)

    op.create_table(
        "team_memberships",
        sa.Column("team_id", sa.String(length=255), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("budget_id", sa.String(length=255), nullable=True),
        sa.Column("spend", sa.Float(precision=53), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["budget_id"],
            ["budgets.budget_id"],
            name=op.f("fk_team_memberships_budget_id_budgets"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.team_id"],
            name=op.f("fk_team_memberships_team_id_teams"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.user_id"],
            name=op.f("fk_team_memberships_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("team_id", "user_id", name=op.f("pk_team_memberships")),
    )
    op.create_index(
        op.f("ix_team_memberships_user_id"), "team_memberships", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_team_memberships_user_id"), table_name="team_memberships")

    op.drop_table("team_memberships")
    op.drop_index(op.f("ix_users_user_email"), table_name="users")

    op.drop_table("users")
    op.drop_index(op.f("ix_teams_team_alias"), table_name="teams")
    op.drop_index(op.f("ix_teams_organization_id"), table_name="teams")

    op.drop_table("teams")
    op.drop_table("organizations")
    op.drop_table("end_users")
    op.drop_index(op.f("ix_api_keys_user_id"), table_name="api_keys")
    op.drop_index(op.f("ix_api_keys_team_id"), table_name="api_keys")
    op.drop_index(op.f("ix_api_keys_organization_id"), table_name="api_keys")

    op.drop_table("api_keys")
    op.drop_index(op.f("ix_spend_logs_user_id"), table_name="spend_logs")
    op.drop_index(op.f("ix_spend_logs_team_id"), table_name="spend_logs")
    op.drop_index(op.f("ix_spend_logs_start_time"), table_name="spend_logs")
    op.drop_index(op.f("ix_spend_logs_end_user"), table_name="spend_logs")
    op.drop_index(op.f("ix_spend_logs_api_key"), table_name="spend_logs")

    op.drop_table("spend_logs")
    op.drop_index(op.f("ix_daily_tag_spend_day"), table_name="daily_tag_spend")

    op.drop_table("daily_tag_spend")
    op.drop_index(op.f("ix_daily_spend_day"), table_name="daily_spend")

    op.drop_table("daily_spend")
    op.drop_table("budgets")
    op.drop_index(op.f("ix_audit_log_created_at"), table_name="audit_log")

    op.drop_table("audit_log")
