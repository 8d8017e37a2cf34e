"""The ledger writer against a real Redis and each database backend: events become spend
rows once, whatever was written before (a crash between commit and ack); a row the
database refuses is kept in the ledger's dead-letter stream instead of holding up the
rest."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from workers.db.engine import Database
from workers.db.spend import record_spend
from workers.db.tables import spend_logs
from workers.redis_streams import Keys, TenancyKeys
from workers.tenancy import events
from workers.tenancy.ledger import LedgerWriter


def event(request_id: str, end_user: str | None = None) -> dict[bytes, bytes]:
    front = events.FrontEvent(
        call_type="chat.completions",
        api_key="a" * 64,
        model="m",
        model_group="m",
        start_ms=1_700_000_000_000,
        end_user=end_user,
    )
    worker = events.WorkerEvent(end_ms=1_700_000_001_000, prompt_tokens=3, spend=0.5)
    return {
        TenancyKeys.REQUEST_FIELD: request_id.encode(),
        TenancyKeys.EVENT_FIELD: events.encode(front),
        TenancyKeys.WORKER_FIELD: events.encode(worker),
        TenancyKeys.SOFT_FIELD: b"",
    }


async def rows(database: Database) -> dict[str, float]:
    async with database.transaction() as conn:
        found = await conn.execute(sa.select(spend_logs.c.request_id, spend_logs.c.spend))
        return {request_id: spend for request_id, spend in found.all()}


async def test_events_become_rows_once(redis: Any, keys: Keys, database: Database) -> None:
    writer = LedgerWriter(redis, keys, database, "writer-1")
    await writer.ensure_group()
    for request_id in ("req_a", "req_b", "req_c"):
        await redis.xadd(keys.tenancy.ledger, event(request_id))
    # req_a was written before, by a writer killed before its ack.
    first = events.spend_record(
        "req_a",
        events.decode_front(event("req_a")[TenancyKeys.EVENT_FIELD]),
        events.decode_worker(event("req_a")[TenancyKeys.WORKER_FIELD]),
    )
    async with database.transaction() as conn:
        assert await record_spend(conn, [first]) == 1
    assert await writer.step() == 3
    assert await rows(database) == {"req_a": 0.5, "req_b": 0.5, "req_c": 0.5}
    assert await redis.xlen(keys.tenancy.ledger) == 0


async def test_a_row_the_database_refuses_does_not_hold_up_the_rest(
    redis: Any, keys: Keys, database: Database
) -> None:
    writer = LedgerWriter(redis, keys, database, "writer-1")
    await writer.ensure_group()
    await redis.xadd(keys.tenancy.ledger, event("req_ok"))
    await redis.xadd(keys.tenancy.ledger, event("req_bad", end_user="u" * 300))
    await writer.step()
    written = await rows(database)
    assert "req_ok" in written
    if database.dialect == "postgresql":  # SQLite stores any length
        assert "req_bad" not in written
        (_, fields), *_ = await redis.xrange(keys.tenancy.ledger_dead)
        assert fields[TenancyKeys.REQUEST_FIELD] == b"req_bad" and b"error" in fields
    assert await redis.xlen(keys.tenancy.ledger) == 0
