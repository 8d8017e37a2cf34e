"""Database URLs as LiteLLM's users write them get the asyncio driver of their database."""

from __future__ import annotations

from pathlib import Path

from workers.db.engine import async_url, sqlite_url


def test_postgresql_urls_run_on_asyncpg_without_prisma_parameters() -> None:
    url = async_url("postgresql://u:p@db:5432/litellm?schema=public&connection_limit=5")
    assert url.drivername == "postgresql+asyncpg"
    assert dict(url.query) == {}
    assert async_url("postgres://u@db/x?sslmode=require").query == {"ssl": "require"}


def test_sqlite_urls_run_on_aiosqlite_and_a_named_driver_is_kept() -> None:
    assert async_url("sqlite:///tmp/x.db").drivername == "sqlite+aiosqlite"
    assert async_url("postgresql+psycopg://u@db/x").drivername == "postgresql+psycopg"


def test_the_default_database_is_a_file_in_the_data_directory(tmp_path: Path) -> None:
    assert sqlite_url(tmp_path) == f"sqlite:///{tmp_path.resolve()}/switchboard.db"
