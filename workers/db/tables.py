"""Every table of the system of record, as SQLAlchemy Core `Table`s (issue #17).

Modelled on LiteLLM's `schema.prisma` (its field names, so keys, users, teams and spend import
one to one), with three deliberate differences:
- team membership lives in one table (`team_memberships`, with the member's role); LiteLLM
  keeps it twice (`members_with_roles` JSON on the team and `LiteLLM_TeamMembership`), and
  the two drift. The management API renders `members_with_roles` from the table.
- a key's `soft_budget` is a column of the key (LiteLLM hangs it on a budget row).
- daily aggregates are two tables, not one per entity (see `daily_spend`).

Lists (`models`, `tags`) and mappings (`metadata`, `model_spend`) are JSON on both SQLite and
PostgreSQL (JSONB there). Every time is stored timezone-aware in UTC. Money is a float in USD,
as LiteLLM's. Nothing here builds SQL from text: the query modules beside this one use these
objects and SQLAlchemy expressions only.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

# Stable constraint names, so migrations can name what they alter on either backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING)

Json = sa.JSON().with_variant(JSONB(), "postgresql")
Time = sa.DateTime(timezone=True)
Money = sa.Float(precision=53)


def _id(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.String(255), primary_key=True)


def _limits() -> list[sa.Column[object]]:
    """The limits every budgeted entity carries (LiteLLM's names)."""
    return [
        sa.Column("max_budget", Money),
        sa.Column("soft_budget", Money),
        sa.Column("budget_duration", sa.String(32)),
        sa.Column("budget_reset_at", Time),
        sa.Column("rpm_limit", sa.BigInteger),
        sa.Column("tpm_limit", sa.BigInteger),
        sa.Column("max_parallel_requests", sa.Integer),
        sa.Column("model_max_budget", Json, nullable=False, default=dict),
    ]


def _stamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", Time, nullable=False),
        sa.Column("created_by", sa.String(255)),
        sa.Column("updated_at", Time, nullable=False),
        sa.Column("updated_by", sa.String(255)),
    ]


def _owner(table: str) -> sa.ForeignKey:
    # An owner's deletion leaves the row, unlinked: a budget or organization going away must
    # not take keys or spend history with it.
    return sa.ForeignKey(f"{table}.{table.removesuffix('s')}_id", ondelete="SET NULL")


budgets = sa.Table(
    "budgets",
    metadata,
    _id("budget_id"),
    *_limits(),
    *_stamps(),
)

organizations = sa.Table(
    "organizations",
    metadata,
    _id("organization_id"),
    sa.Column("organization_alias", sa.String(255), nullable=False),
    sa.Column("budget_id", sa.String(255), _owner("budgets")),
    sa.Column("models", Json, nullable=False, default=list),
    sa.Column("metadata", Json, nullable=False, default=dict),
    sa.Column("spend", Money, nullable=False, default=0.0),
    sa.Column("model_spend", Json, nullable=False, default=dict),
    *_stamps(),
)

teams = sa.Table(
    "teams",
    metadata,
    _id("team_id"),
    sa.Column("team_alias", sa.String(255), index=True),
    sa.Column("organization_id", sa.String(255), _owner("organizations"), index=True),
    sa.Column("models", Json, nullable=False, default=list),
    sa.Column("metadata", Json, nullable=False, default=dict),
    sa.Column("tags", Json, nullable=False, default=list),
    *_limits(),
    # Per-model budgets every member gets where its own budget row names none (LiteLLM's
    # team_member_model_max_budget); NULL: none (revision 0004 added it).
    sa.Column("team_member_model_max_budget", Json),
    sa.Column("spend", Money, nullable=False, default=0.0),
    sa.Column("model_spend", Json, nullable=False, default=dict),
    sa.Column("blocked", sa.Boolean, nullable=False, default=False),
    *_stamps(),
)

users = sa.Table(
    "users",
    metadata,
    _id("user_id"),
    sa.Column("user_alias", sa.String(255)),
    sa.Column("user_email", sa.String(320), index=True),
    # proxy_admin | proxy_admin_viewer | internal_user | internal_user_viewer (docs/tenancy.md)
    sa.Column("user_role", sa.String(32), nullable=False),
    sa.Column("organization_id", sa.String(255), _owner("organizations")),
    sa.Column("models", Json, nullable=False, default=list),
    sa.Column("metadata", Json, nullable=False, default=dict),
    *_limits(),
    sa.Column("spend", Money, nullable=False, default=0.0),
    sa.Column("model_spend", Json, nullable=False, default=dict),
    *_stamps(),
)

team_memberships = sa.Table(
    "team_memberships",
    metadata,
    sa.Column(
        "team_id",
        sa.String(255),
        sa.ForeignKey("teams.team_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column(
        "user_id",
        sa.String(255),
        sa.ForeignKey("users.user_id", ondelete="CASCADE"),
        primary_key=True,
        index=True,
    ),
    # "admin" manages the team's keys and members; "user" is a member (LiteLLM's team roles).
    sa.Column("role", sa.String(16), nullable=False),
    # The member's own budget inside the team (LiteLLM's max_budget_in_team).
    sa.Column("budget_id", sa.String(255), _owner("budgets")),
    sa.Column("spend", Money, nullable=False, default=0.0),
    sa.Column("created_at", Time, nullable=False),
)

# Virtual keys. `token` is LiteLLM's hash of the key (SHA-256, hex); the key itself is never
# stored. Owners are plain ids, not foreign keys: LiteLLM databases hold keys whose user row
# never existed, and importing them must not fail.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("token", sa.String(64), primary_key=True),
    sa.Column("key_name", sa.String(32), nullable=False),
    sa.Column("key_alias", sa.String(255), unique=True),
    sa.Column("user_id", sa.String(255), index=True),
    sa.Column("team_id", sa.String(255), index=True),
    sa.Column("organization_id", sa.String(255), index=True),
    sa.Column("budget_id", sa.String(255), _owner("budgets")),
    sa.Column("models", Json, nullable=False, default=list),
    sa.Column("metadata", Json, nullable=False, default=dict),
    sa.Column("tags", Json, nullable=False, default=list),
    sa.Column("allowed_routes", Json, nullable=False, default=list),
    *_limits(),
    sa.Column("spend", Money, nullable=False, default=0.0),
    sa.Column("model_spend", Json, nullable=False, default=dict),
    sa.Column("expires", Time),
    sa.Column("blocked", sa.Boolean, nullable=False, default=False),
    sa.Column("last_active", Time),
    *_stamps(),
)

# Customers: the `user` field of a request (LiteLLM's end users); limits via a budget row.
end_users = sa.Table(
    "end_users",
    metadata,
    _id("user_id"),
    sa.Column("alias", sa.String(255)),
    sa.Column("budget_id", sa.String(255), _owner("budgets")),
    sa.Column("allowed_model_region", sa.String(8)),
    sa.Column("default_model", sa.String(255)),
    sa.Column("spend", Money, nullable=False, default=0.0),
    sa.Column("blocked", sa.Boolean, nullable=False, default=False),
    *_stamps(),
)

# One row per finished request; the ledger inserts by `request_id` with ON CONFLICT DO NOTHING,
# so a redelivered event never doubles a row (issue #17: exactly one row per request).
spend_logs = sa.Table(
    "spend_logs",
    metadata,
    sa.Column("request_id", sa.String(255), primary_key=True),
    sa.Column("call_type", sa.String(64), nullable=False),  # the endpoint: chat, embeddings...
    sa.Column("api_key", sa.String(64), nullable=False, index=True),  # the key's hash
    sa.Column("key_alias", sa.String(255)),
    sa.Column("user_id", sa.String(255), index=True),
    sa.Column("team_id", sa.String(255), index=True),
    sa.Column("organization_id", sa.String(255)),
    sa.Column("end_user", sa.String(255), index=True),
    sa.Column("model", sa.String(255), nullable=False),  # as requested
    sa.Column("model_group", sa.String(255), nullable=False),
    sa.Column("deployment", sa.String(255)),
    sa.Column("provider", sa.String(64)),
    sa.Column("prompt_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("completion_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("total_tokens", sa.BigInteger, nullable=False, default=0),
    sa.Column("spend", Money, nullable=False, default=0.0),
    sa.Column("start_time", Time, nullable=False, index=True),
    sa.Column("end_time", Time, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # success | failure
    sa.Column("request_tags", Json, nullable=False, default=list),
    sa.Column("batch_id", sa.String(255)),
    sa.Column("metadata", Json, nullable=False, default=dict),
)


def _measures() -> list[sa.Column[object]]:
    return [
        sa.Column("prompt_tokens", sa.BigInteger, nullable=False, default=0),
        sa.Column("completion_tokens", sa.BigInteger, nullable=False, default=0),
        sa.Column("spend", Money, nullable=False, default=0.0),
        sa.Column("api_requests", sa.BigInteger, nullable=False, default=0),
        sa.Column("successful_requests", sa.BigInteger, nullable=False, default=0),
        sa.Column("failed_requests", sa.BigInteger, nullable=False, default=0),
        sa.Column("updated_at", Time, nullable=False),
    ]


# Daily aggregates, our own tables instead of LiteLLM's one per entity. A key belongs to one user,
# team and organization, so one row per day x key x model group x provider carries all four
# dimensions without multiplying rows, and every "by key/user/team/org/model" report is one
# GROUP BY. Tags are many per request, so they get their own table (summing a request into
# each of its tags there never double-counts a total in the first). Dimensions are '' rather
# than NULL: a unique constraint treats NULLs as distinct, which would break the upsert.
DAILY_DIMENSIONS = ("day", "api_key", "user_id", "team_id", "organization_id", "model_group")
daily_spend = sa.Table(
    "daily_spend",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("day", sa.String(10), nullable=False, index=True),  # YYYY-MM-DD, UTC
    sa.Column("api_key", sa.String(64), nullable=False),
    sa.Column("user_id", sa.String(255), nullable=False),
    sa.Column("team_id", sa.String(255), nullable=False),
    sa.Column("organization_id", sa.String(255), nullable=False),
    sa.Column("model_group", sa.String(255), nullable=False),
    sa.Column("provider", sa.String(64), nullable=False),
    *_measures(),
    sa.UniqueConstraint(*DAILY_DIMENSIONS, "provider", name="uq_daily_spend_row"),
)

# The spend report sums a range of days per group (issue #21). Teams, users, organizations
# and model groups are few beside keys, so the ledger also keeps their days in a table of
# their own (`group_by` names the dimension), a few thousand rows where `daily_spend` has a
# row per key; the model rows double as each day's total. Keys are summed from `daily_spend`
# through an index led by the key and the day that carries the measures: the database sums
# from the index alone, in key order (SQLite has no INCLUDE, so they are key columns).
REPORT_MEASURES = ("spend", "prompt_tokens", "completion_tokens", "api_requests")
sa.Index(
    "ix_daily_spend_report_api_key", daily_spend.c.api_key, daily_spend.c.day, *REPORT_MEASURES
)
daily_group_spend = sa.Table(
    "daily_group_spend",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("day", sa.String(10), nullable=False),
    sa.Column("group_by", sa.String(16), nullable=False),  # team | user | organization | model
    sa.Column("group_id", sa.String(255), nullable=False),
    sa.Column("model_group", sa.String(255), nullable=False),
    *_measures(),
    sa.UniqueConstraint(
        "group_by", "day", "group_id", "model_group", name="uq_daily_group_spend_row"
    ),
)

# Spend per key over aligned blocks of days (issue #21): `level` L holds the 2**L days from
# `day` (a day number divisible by 2**L since 1970-01-01; workers/db/key_blocks.py), L from 0
# to 8. Any range of days is the union of a few such blocks (at most two per level), so
# ranking every key over 30 days reads a few index entries per key, not one per key, day and
# model as daily_spend would (and not the key's whole history, as an index led by the key
# did). The ledger writes a request into one block per level.
key_spend_blocks = sa.Table(
    "key_spend_blocks",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("level", sa.SmallInteger, nullable=False),
    sa.Column("day", sa.String(10), nullable=False),  # the block's first day, YYYY-MM-DD, UTC
    sa.Column("api_key", sa.String(64), nullable=False),
    *_measures(),
    sa.UniqueConstraint("level", "day", "api_key", name="uq_key_spend_blocks_row"),
)
sa.Index(
    "ix_key_spend_blocks_report",
    key_spend_blocks.c.level,
    key_spend_blocks.c.day,
    key_spend_blocks.c.api_key,
    *(key_spend_blocks.c[name] for name in REPORT_MEASURES),
)

daily_tag_spend = sa.Table(
    "daily_tag_spend",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("day", sa.String(10), nullable=False, index=True),
    sa.Column("tag", sa.String(255), nullable=False),
    sa.Column("api_key", sa.String(64), nullable=False),
    sa.Column("model_group", sa.String(255), nullable=False),
    *_measures(),
    sa.UniqueConstraint("day", "tag", "api_key", "model_group", name="uq_daily_tag_spend_row"),
)
sa.Index(
    "ix_daily_tag_spend_report_tag", daily_tag_spend.c.tag, daily_tag_spend.c.day, *REPORT_MEASURES
)

# Every management call that changes something (issue #17). Values are masked before they
# are written (workers.log_redaction.mask_secrets); a key is never among them, its hash is.
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created_at", Time, nullable=False, index=True),
    sa.Column("changed_by", sa.String(255), nullable=False),
    sa.Column("changed_by_key", sa.String(64)),  # the caller key's hash; None for the master key
    sa.Column("role", sa.String(32), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("object_type", sa.String(32), nullable=False),
    sa.Column("object_id", sa.String(255), nullable=False),
    sa.Column("before_value", Json),
    sa.Column("after_value", Json),
)
