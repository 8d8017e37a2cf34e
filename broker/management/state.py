"""The management API's state on the app: the database (opened and migrated at start, closed
at shutdown), the authenticator, and the listeners told about every committed change."""

from __future__ import annotations

import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from broker.config.loader import Config
from broker.management.access import ManagementAuth
from workers.errors import ServiceUnavailable

if TYPE_CHECKING:
    from workers.db.engine import Database

log = logging.getLogger("switchboard.management")

# The modules of the handlers broker.management.ROUTES names (each imports SQLAlchemy): loaded
# at start with a database, so that no first call pays for it; without one, on first call.
HANDLER_MODULES = ("budgets", "customers", "keys", "organizations", "spend", "teams", "users")


class Change(msgspec.Struct, frozen=True, kw_only=True):
    """One committed change: what a listener (the key mirror of phase 17b) reacts to."""

    action: str  # create | update | delete | block | unblock | regenerate | ...
    object_type: str  # key | user | team | team_member | organization | customer | budget
    object_id: str  # a key's hash, a user id, ...
    after: dict[str, Any] | None = None  # the row after the change; None once deleted
    before: dict[str, Any] | None = None  # the row before it; None when it is new


ChangeListener = Callable[[Change], Awaitable[None]]


class Management:
    def __init__(self, config: Config) -> None:
        general = config.general_settings
        master_key = str(general.master_key) if general.master_key else None
        self.auth = ManagementAuth(master_key, config.switchboard_settings.api_keys)
        self.max_body_bytes = config.switchboard_settings.max_body_bytes
        # What a key's `guardrails` may name (issue #19).
        self.guardrail_names = frozenset(entry.guardrail_name for entry in config.guardrails)
        self.database: Database | None = None
        if general.database_url is not None:
            # Here: without a database, SQLAlchemy is never loaded (issue #22's memory).
            from workers.db.engine import Database

            self.database = Database(
                str(general.database_url),
                pool_size=general.database_connection_pool_limit,
                pool_timeout_s=general.database_connection_timeout,
            )
        self.listeners: list[ChangeListener] = []

    def require_database(self) -> Database:
        if self.database is None:
            raise ServiceUnavailable(
                "the management API needs a database: set DATABASE_URL or "
                "general_settings.database_url (`switchboard up` uses SQLite in its data "
                "directory by default)",
                code="database_not_configured",
            )
        return self.database

    async def publish(self, changes: list[Change]) -> None:
        for change in changes:
            for listener in self.listeners:
                try:
                    await listener(change)
                except Exception:  # a listener's failure must not undo a committed change
                    log.exception(
                        "change listener failed on %s %s", change.object_type, change.action
                    )


MANAGEMENT = web.AppKey("management", Management)


def management_ctx(
    config: Config,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The cleanup context that opens the database (migrated to the newest schema) and
    closes it. A database that is down at start does not stop the front door: the request
    path does not need it, and management calls answer 503 until it is back."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        management = Management(config)
        app[MANAGEMENT] = management
        database = management.database
        if database is not None:
            for module in HANDLER_MODULES:
                importlib.import_module(f"broker.management.{module}")
            try:
                await database.migrate()
            except ServiceUnavailable:
                log.warning(
                    "database %s unreachable at start; will retry on first use", database.describe()
                )
        try:
            yield
        finally:
            if database is not None:
                await database.close()

    return context
