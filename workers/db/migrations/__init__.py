"""Alembic migrations of the system of record, run programmatically at start (`upgrade head`).

Revisions are written at development time (`python -m workers.db.migrations revision -m
"..."` autogenerates one from `workers/db/tables.py` against a scratch database, to be read
and edited before it is committed) and never generated at run time.
`tests/workers/db/test_migrations.py` fails when `tables.py` and the revisions disagree.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

HERE = Path(__file__).resolve().parent


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    # env.py runs on this connection (inside the caller's transaction) instead of opening one.
    config.attributes["connection"] = connection
    return config


def upgrade_head(connection: sa.Connection) -> None:
    command.upgrade(alembic_config(connection), "head")
