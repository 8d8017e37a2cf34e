"""What code outside the database layer names without loading SQLAlchemy: the outage error,
where `switchboard up` keeps its SQLite file, the ledger's row type and the user roles. A
front door or a worker without a database imports only this (issue #22: SQLAlchemy is ~30 MiB
of each process); `workers.db.engine`, `spend` and `users` re-export what they owned."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from workers.errors import ServiceUnavailable

SQLITE_FILE = "switchboard.db"
SUCCESS = "success"
# A user's roles (LiteLLM's names); workers.db.users re-exports them.
PROXY_ADMIN = "proxy_admin"
PROXY_ADMIN_VIEWER = "proxy_admin_viewer"
INTERNAL_USER = "internal_user"
INTERNAL_USER_VIEWER = "internal_user_viewer"
ROLES = (PROXY_ADMIN, PROXY_ADMIN_VIEWER, INTERNAL_USER, INTERNAL_USER_VIEWER)


class DatabaseUnavailable(ServiceUnavailable):
    default_code = "database_unavailable"


def sqlite_url(data_dir: Path) -> str:
    """The default database: a SQLite file in the data directory."""
    return f"sqlite:///{(data_dir / SQLITE_FILE).resolve()}"


class SpendRecord(msgspec.Struct, kw_only=True, frozen=True):
    """One finished request, as the ledger hands it over."""

    request_id: str
    call_type: str  # the endpoint: "chat.completions", "embeddings", "batch", ...
    api_key: str  # the key's hash (workers.db.keys.hash_token)
    model: str
    model_group: str
    start_time: datetime
    end_time: datetime
    key_alias: str | None = None
    user_id: str | None = None
    team_id: str | None = None
    organization_id: str | None = None
    end_user: str | None = None
    deployment: str | None = None
    provider: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    spend: float = 0.0
    status: str = SUCCESS
    tags: tuple[str, ...] = ()
    batch_id: str | None = None
    metadata: dict[str, Any] = {}
