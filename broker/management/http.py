"""What every management endpoint shares: authenticate, read the body, run in one
transaction with its audit rows, answer JSON, tell the listeners after the commit.

Errors take the API's one shape (`broker/errors.py`): a database outage is a 503
`database_unavailable`, a change that collides with a row (a duplicate id, an unknown
reference) a 400 `conflict`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, time
from typing import Any, TypeVar

import msgspec
from aiohttp import web
from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncConnection

from broker.errors import JSON
from broker.management.access import Principal
from broker.management.bodies import Body, read_body
from broker.management.state import MANAGEMENT, Change, Management
from workers.db import audit
from workers.db.engine import Database
from workers.db.rows import Row
from workers.errors import InvalidRequest, NotFound

B = TypeVar("B", bound=Body)
encode = msgspec.json.Encoder().encode


class Call:
    """One management call: who makes it, its body and query, its transaction."""

    def __init__(self, request: web.Request, management: Management, principal: Principal):
        self.request = request
        self.management = management
        self.principal = principal
        self.database: Database = management.require_database()
        self.changes: list[Change] = []

    async def body(self, kind: type[B]) -> B:
        return await read_body(self.request, kind, self.management.max_body_bytes)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.database.transaction() as conn:
                yield conn
        except exc.IntegrityError:
            self.changes.clear()
            raise InvalidRequest(
                "the change collides with the stored data: an id or alias that is taken, or "
                "a reference to a budget, organization, team or user that does not exist",
                code="conflict",
            ) from None

    async def audit(
        self,
        conn: AsyncConnection,
        action: str,
        object_type: str,
        object_id: str,
        before: Row | None,
        after: Row | None,
    ) -> None:
        """Write the audit row (same transaction) and queue the change for the listeners."""
        principal = self.principal
        await audit.record(
            conn,
            changed_by=principal.name,
            changed_by_key=principal.token,
            role=principal.role,
            action=action,
            object_type=object_type,
            object_id=object_id,
            before=before,
            after=after,
        )
        self.changes.append(
            Change(
                action=action,
                object_type=object_type,
                object_id=object_id,
                after=after,
                before=before,
            )
        )

    # ------------------------------------------------------------------ query parameters

    def query(self, name: str) -> str | None:
        value = self.request.query.get(name)
        return value if value else None

    def query_int(self, name: str, default: int, *, low: int = 1, high: int = 1000) -> int:
        text = self.request.query.get(name)
        if not text:
            return default
        try:
            value = int(text)
        except ValueError:
            raise InvalidRequest(f"`{name}` must be a whole number", param=name) from None
        if not low <= value <= high:
            raise InvalidRequest(f"`{name}` must be between {low} and {high}", param=name)
        return value

    def query_bool(self, name: str) -> bool:
        return (self.request.query.get(name) or "").lower() in ("true", "1", "yes")

    def query_date(self, name: str) -> date | None:
        text = self.query(name)
        if text is None:
            return None
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            raise InvalidRequest(f"`{name}` must be a date, YYYY-MM-DD", param=name) from None


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def required(value: str | None, name: str) -> str:
    if not value:
        raise InvalidRequest(f"`{name}` is required", param=name, code="missing_parameter")
    return value


def found(row: Row | None, what: str, name: str) -> Row:
    if row is None:
        raise NotFound(f"no {what} `{name}`", code=f"{what.replace(' ', '_')}_not_found")
    return row


def remaining(row: Row) -> float | None:
    """What is left of a row's budget (None when it has none)."""
    if row.get("max_budget") is None:
        return None
    return float(row["max_budget"]) - float(row.get("spend") or 0.0)


Handler = Callable[[Call], Awaitable[Any]]


def endpoint(handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handle(request: web.Request) -> web.Response:
        management = request.app[MANAGEMENT]
        database = management.require_database()
        principal = await management.auth.authenticate(request, database)
        call = Call(request, management, principal)
        result = await handler(call)
        await management.publish(call.changes)
        return web.Response(body=encode(result), content_type=JSON)

    handle.__name__ = handler.__name__
    handle.__doc__ = handler.__doc__
    return handle
