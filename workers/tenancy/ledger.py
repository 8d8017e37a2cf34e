"""The spend ledger's writer (issue #17): a consumer group on the ledger stream that writes
spend events to the database in batches, idempotently by request id.

An event is acknowledged (and trimmed, once the callbacks' group is done with it too:
workers/redis_streams/finished_events.py) only after the transaction holding its row
committed. A writer killed between the commit and the ack leaves the entry pending: another
writer (or its successor) claims it after `claim_idle_ms` and writes it again, which
changes nothing (`workers.db.spend.record_spend` inserts ON CONFLICT DO NOTHING and moves
totals only for the rows it inserted). While the database is down the writer keeps its
batch and retries, backing off; the stream holds the rest, in Redis, with nothing in
process memory (LiteLLM #21514, #27704). Its length is the backlog metric and alert.

The writer also settles reservations whose requests never finished (no worker ever wrote
their end, past the deadline and its slack): their leases and reserved budget go back, and
their spend row says `failure` at no cost. And it resets budgets whose period ended
(`workers/db/resets.py`), in the database and the mirror, also when no request arrives."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy.exc import SQLAlchemyError

from workers.db import resets
from workers.db.engine import Database, DatabaseUnavailable
from workers.db.spend import SpendRecord, record_spend
from workers.redis_streams import Keys, TenancyKeys, finished_events
from workers.tenancy import admission, events, mirror, settle

log = logging.getLogger("switchboard.ledger")

BATCH = 500
BLOCK_MS = 1000
LINGER_S = 0.25
CLAIM_IDLE_MS = 15_000
SWEEP_EVERY_S = 5.0
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0


class LedgerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.backlog = Gauge(
            "switchboard_ledger_backlog",
            "Spend events in the ledger stream not yet written to the database.",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.written = Counter(
            "switchboard_ledger_rows",
            "Spend rows the ledger writer inserted (redelivered events excluded).",
            registry=registry,
        )
        self.spend = Counter(
            "switchboard_spend_usd",
            "Spend the ledger recorded, by team and model group (USD).",
            ["team", "model_group"],
            registry=registry,
        )
        self.soft_budget = Counter(
            "switchboard_soft_budget_crossed",
            "Requests whose cost took a scope past its soft budget, by kind of scope.",
            ["scope"],
            registry=registry,
        )
        self.failures = Counter(
            "switchboard_ledger_write_failures",
            "Ledger batches the database refused (retried until written).",
            registry=registry,
        )


class LedgerWriter:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        database: Database,
        consumer: str,
        metrics: LedgerMetrics | None = None,
        *,
        claim_idle_ms: int = CLAIM_IDLE_MS,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.tkeys: TenancyKeys = keys.tenancy
        self.database = database
        self.consumer = consumer
        self.metrics = metrics
        self.claim_idle_ms = claim_idle_ms
        self._next_sweep = 0.0
        # Held while the writer uses the database: a stop waits for it, because a
        # transaction cancelled half-way leaves aiosqlite's connection (and SQLite's write
        # lock) behind.
        self.using_database = asyncio.Lock()

    async def stop(self, task_stop: Callable[[], Awaitable[None]], timeout_s: float = 5.0) -> None:
        """Stop between two uses of the database (or after `timeout_s` if the database
        holds it up); what was read and not written stays pending for the next writer."""
        try:
            await asyncio.wait_for(self.using_database.acquire(), timeout_s)
        except TimeoutError:
            await task_stop()
            return
        try:
            await task_stop()
        finally:
            self.using_database.release()

    async def run(self) -> None:
        """Write events for as long as the process runs (a supervised loop)."""
        while True:
            try:
                await self.ensure_group()
                while True:
                    await self.step()
            except Exception:  # Redis gone, a bug: nothing is acked, so nothing is lost
                log.exception("ledger writer failed; retrying")
                await asyncio.sleep(RETRY_MAX_S)

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(
                self.tkeys.ledger, TenancyKeys.LEDGER_GROUP, id="0", mkstream=True
            )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def step(self) -> int:
        """One pass: sweep expired reservations now and then, take a batch (entries other
        writers left idle first, then new ones), write it, ack it. How many were written."""
        if time.monotonic() >= self._next_sweep:
            await self.sweep()
            async with self.using_database:
                await self.reset_budgets()
            self._next_sweep = time.monotonic() + SWEEP_EVERY_S
        entries = await self._claim_idle() or await self._read_new(BLOCK_MS)
        if 0 < len(entries) < BATCH:
            # Let a batch fill a little: one transaction for many rows costs the database
            # (and this process) far less than one each, and the rows are not urgent.
            await asyncio.sleep(LINGER_S)
            entries += await self._read_new(None, BATCH - len(entries))
        if self.metrics is not None:
            # The ledger group's own backlog: the stream may also hold entries only the
            # callbacks' group still has to read.
            self.metrics.backlog.set(
                await finished_events.backlog(
                    self.redis, self.tkeys.ledger, TenancyKeys.LEDGER_GROUP
                )
            )
        if not entries:
            return 0
        async with self.using_database:
            await self._write(entries)
        return len(entries)

    async def _claim_idle(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        reply: Any = await self.redis.xautoclaim(
            self.tkeys.ledger,
            TenancyKeys.LEDGER_GROUP,
            self.consumer,
            min_idle_time=self.claim_idle_ms,
            start_id="0-0",
            count=BATCH,
        )
        return [(bytes(i), fields) for i, fields in reply[1] if fields]

    async def _read_new(
        self, block_ms: int | None, count: int = BATCH
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        reply: Any = await self.redis.xreadgroup(
            TenancyKeys.LEDGER_GROUP,
            self.consumer,
            {self.tkeys.ledger: ">"},
            count=count,
            block=block_ms,
        )
        if not reply:
            return []
        return [(bytes(i), fields) for i, fields in reply[0][1] if fields]

    async def _write(self, entries: Sequence[tuple[bytes, dict[bytes, bytes]]]) -> None:
        spend_records, crossed = _decode(entries)
        delay = RETRY_FIRST_S
        while True:
            try:
                async with self.database.transaction() as conn:
                    new = await record_spend(conn, spend_records)
                break
            except DatabaseUnavailable:
                # Keep the batch and wait: the stream keeps everything after it.
                if self.metrics is not None:
                    self.metrics.failures.inc()
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
            except SQLAlchemyError:
                # The database refused the batch itself (a value it cannot store): write
                # the rows one by one, so one bad row cannot hold the ledger up forever.
                new = await self._write_each(entries, spend_records)
                break
        ids = [entry_id for entry_id, _ in entries]
        # Acked, and trimmed only as far as every group is done: the callbacks' group
        # (issue #19) may not have read these yet.
        await finished_events.ack_and_trim(
            self.redis, self.tkeys.ledger, TenancyKeys.LEDGER_GROUP, ids
        )
        self._count(spend_records, new, crossed)

    async def _write_each(
        self,
        entries: Sequence[tuple[bytes, dict[bytes, bytes]]],
        spend_records: list[SpendRecord],
    ) -> int:
        """Each row in its own transaction; a row the database refuses is kept in the
        ledger's dead-letter stream (with the error), not dropped."""
        new = 0
        by_request = {
            fields.get(TenancyKeys.REQUEST_FIELD, b"").decode(): fields for _, fields in entries
        }
        for record in spend_records:
            try:
                async with self.database.transaction() as conn:
                    new += await record_spend(conn, [record])
            except SQLAlchemyError as exc:  # an outage raises DatabaseUnavailable instead
                log.error("the database refused the spend row of %s: %s", record.request_id, exc)
                fields = dict(by_request.get(record.request_id, {}))
                fields[b"error"] = str(exc)[:1000].encode()
                await self.redis.xadd(self.tkeys.ledger_dead, fields)  # type: ignore[arg-type]  # redis-py types fields narrowly
        return new

    def _count(self, spend_records: list[SpendRecord], new: int, crossed: list[str]) -> None:
        metrics = self.metrics
        if metrics is None:
            return
        metrics.written.inc(new)
        if new == len(spend_records):  # a redelivered batch would count twice
            for record in spend_records:
                if record.spend:
                    metrics.spend.labels(record.team_id or "", record.model_group).inc(record.spend)
        for scope in crossed:
            metrics.soft_budget.labels(scope.partition(":")[0]).inc()

    async def reset_budgets(self) -> int:
        """Budget periods that ended: reset in the database, then in the mirror (every
        front door drops its copy). Skipped while the database is down."""
        try:
            async with self.database.transaction() as conn:
                changed = await resets.reset_due(conn, datetime.now(UTC))
            if not changed:
                return 0
            entities = await mirror.from_database(self.database, changed)
        except DatabaseUnavailable:
            return 0
        for (kind, oid), entity in zip(changed, entities, strict=True):
            await mirror.publish(self.redis, self.tkeys, kind, oid, entity)
        log.info("reset %d budgets whose period ended", len(changed))
        return len(changed)

    async def sweep(self) -> int:
        """Settle reservations whose requests outlived their deadline unsettled."""
        now_ms = int(time.time() * 1000)
        expired: Any = await self.redis.zrangebyscore(
            self.tkeys.inflight, "-inf", now_ms, start=0, num=BATCH
        )
        if not expired:
            return 0
        request_ids = [rid.decode() for rid in expired]
        pipe = self.redis.pipeline(transaction=False)
        for request_id in request_ids:
            pipe.hget(self.tkeys.reservation(request_id), "n")
        names: list[Any] = await pipe.execute()
        event = events.WorkerEvent(end_ms=now_ms, status=events.FAILURE)
        pipe = self.redis.pipeline(transaction=False)
        for request_id, raw in zip(request_ids, names, strict=True):
            if raw is None:
                pipe.zrem(self.tkeys.inflight, request_id)
                continue
            scopes = admission.decode_names(raw)
            script_keys, args = settle.script_call(self.tkeys, request_id, scopes, event)
            pipe.eval(settle.SETTLE, len(script_keys), *script_keys, *args)
        await pipe.execute()
        log.warning("settled %d reservations of requests that never finished", len(expired))
        return len(expired)


def _decode(
    entries: Sequence[tuple[bytes, dict[bytes, bytes]]],
) -> tuple[list[SpendRecord], list[str]]:
    spend_records = []
    crossed: list[str] = []
    for entry_id, fields in entries:
        if TenancyKeys.EVENT_FIELD not in fields and (
            TenancyKeys.CALL_FIELD in fields or TenancyKeys.FRONT_SPANS_FIELD in fields
        ):
            # A callbacks event of a request admitted without tenancy, or a front door's
            # spans: no spend.
            continue
        try:
            front = events.decode_front(fields[TenancyKeys.EVENT_FIELD])
            worker = events.decode_worker(fields[TenancyKeys.WORKER_FIELD])
        except (KeyError, ValueError) as exc:
            log.error("dropping malformed ledger entry %r: %s", entry_id, exc)
            continue
        request_id = _request_id(fields)
        if worker.spend < 0:  # charged its reservation: the script says how much
            charged = float(fields.get(TenancyKeys.CHARGED_FIELD, b"0"))
            worker = msgspec.structs.replace(worker, spend=charged)
        spend_records.append(events.spend_record(request_id, front, worker))
        crossed += fields.get(TenancyKeys.SOFT_FIELD, b"").decode().split()
    return spend_records, crossed


def _request_id(fields: dict[bytes, bytes]) -> str:
    return fields[TenancyKeys.REQUEST_FIELD].decode()
