"""Alembic's environment: always online, on the connection the caller passed in
(`workers.db.migrations.upgrade_head`), so migrations share its transaction and lock."""

from __future__ import annotations

from alembic import context

from workers.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through workers.db.migrations, which passes a connection")
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode copies the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
