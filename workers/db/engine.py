"""The database connection: which URL, which driver, pool settings, migrations at start, and
the one place a database outage becomes `DatabaseUnavailable` (a 503 at the management API).

URLs are LiteLLM's: `postgresql://user:pw@host/db` (its `DATABASE_URL`) runs on asyncpg,
`sqlite:///path` on aiosqlite; a URL naming its driver is used as is. SQLite runs in WAL mode
with a busy timeout and `BEGIN IMMEDIATE`, so several processes (`up --front-doors 2`, the
ledger) share one file: a writer waits its turn instead of failing with "database is locked".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc

try:
    import fcntl
except ImportError:  # not on Windows: there, processes sharing a new SQLite file race
    fcntl = None  # type: ignore[assignment]
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

# Re-exported (`X as X`): their home was here before workers.db.plain.
from workers.db.plain import DatabaseUnavailable as DatabaseUnavailable
from workers.db.plain import sqlite_url as sqlite_url

log = logging.getLogger("switchboard.db")

SQLITE_BUSY_TIMEOUT_S = 30.0
DEFAULT_POOL_SIZE = 10
DEFAULT_POOL_TIMEOUT_S = 30.0
# Seconds a new PostgreSQL connection may take; a database that is down fails fast instead of
# holding a management call for a minute.
CONNECT_TIMEOUT_S = 5.0
RETRY_AFTER_S = 5.0
# Query parameters of Prisma (LiteLLM's ORM) that asyncpg does not know; dropped.
PRISMA_ONLY = frozenset({"schema", "connection_limit", "pool_timeout", "pgbouncer", "sslaccept"})
# Any constant works; all processes on one database must use the same one.
MIGRATION_LOCK_ID = 0x5B17_0017


def async_url(url: str) -> URL:
    """`url` with the asyncio driver of its database (LiteLLM's URLs name none)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        query = {k: v for k, v in parsed.query.items() if k not in PRISMA_ONLY}
        if "sslmode" in query:  # libpq's name; asyncpg calls it `ssl`
            query["ssl"] = query.pop("sslmode")
        driver = parsed.get_driver_name() if "+" in parsed.drivername else "asyncpg"
        return parsed.set(drivername=f"postgresql+{driver}", query=query)
    if backend == "sqlite" and "+" not in parsed.drivername:
        return parsed.set(drivername="sqlite+aiosqlite")
    return parsed


def create_engine(
    url: str,
    *,
    pool_size: int = DEFAULT_POOL_SIZE,
    pool_timeout_s: float = DEFAULT_POOL_TIMEOUT_S,
) -> AsyncEngine:
    target = async_url(url)
    if target.get_backend_name() == "sqlite":
        return _sqlite_engine(target)
    return create_async_engine(
        target,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=pool_timeout_s,
        # A connection the database dropped (a restart) is replaced, not handed to a call.
        pool_pre_ping=True,
        connect_args={"timeout": CONNECT_TIMEOUT_S},
    )


def _sqlite_engine(target: URL) -> AsyncEngine:
    if target.database and target.database != ":memory:":
        Path(target.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(target, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own transaction handling would BEGIN late and DEFERRED; we begin below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        # IMMEDIATE takes the write lock at the start, so two writers queue on the busy
        # timeout; a DEFERRED reader that later writes fails at once with SQLITE_BUSY.
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


# What a database that is down, restarting or unreachable raises through SQLAlchemy.
OUTAGE_ERRORS = (
    OSError,
    TimeoutError,
    exc.OperationalError,
    exc.InterfaceError,
    exc.TimeoutError,
)


def is_outage(error: BaseException) -> bool:
    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OUTAGE_ERRORS)


class Database:
    """One engine per process; migrated to the newest schema before its first use."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        pool_timeout_s: float = DEFAULT_POOL_TIMEOUT_S,
    ) -> None:
        self.url = async_url(url)
        self.engine = create_engine(url, pool_size=pool_size, pool_timeout_s=pool_timeout_s)
        self._migrated = False
        self._migrating = asyncio.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def describe(self) -> str:
        """The URL without its password, for logs and messages."""
        return self.url.render_as_string(hide_password=True)

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (`alembic upgrade head`), once; several
        processes starting together take turns (an advisory lock on PostgreSQL, a file lock
        beside a SQLite file)."""
        async with self._migrating:
            if self._migrated:
                return
            from workers.db.migrations import upgrade_head

            async with self._outage_as_unavailable(), self._sqlite_file_lock():
                async with self.engine.begin() as conn:
                    if self.dialect == "postgresql":
                        await conn.execute(
                            sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK_ID))
                        )
                    await conn.run_sync(upgrade_head)
            self._migrated = True
            log.info("database %s is at the newest schema", self.describe())

    @asynccontextmanager
    async def _sqlite_file_lock(self) -> AsyncIterator[None]:
        # A new SQLite file's first connections race to switch it to WAL; one that still
        # sees the rollback journal locks differently from one in WAL mode, and both then
        # create the tables. So the first connection of each process, the one migrating,
        # waits on a lock file beside the database (flock: released if the process dies).
        path = self.url.database if self.dialect == "sqlite" else None
        if not path or path == ":memory:" or fcntl is None:
            yield
            return
        handle = await asyncio.to_thread(Path(path + ".lock").open, "a")
        try:
            await asyncio.to_thread(fcntl.flock, handle, fcntl.LOCK_EX)
            yield
        finally:
            handle.close()  # and with it the lock

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed when the block ends without an error."""
        await self.migrate()
        async with self._outage_as_unavailable(), self.engine.begin() as conn:
            yield conn

    async def close(self) -> None:
        await self.engine.dispose()

    @asynccontextmanager
    async def _outage_as_unavailable(self) -> AsyncIterator[None]:
        try:
            yield
        except Exception as error:
            if not is_outage(error):
                raise
            log.warning("database %s unavailable: %s", self.describe(), error)
            raise DatabaseUnavailable(
                "the database is unavailable, so management calls fail until it is back; "
                "retry shortly",
                retry_after_s=RETRY_AFTER_S,
            ) from error
