"""The batch a client made, when it was split by model group (broker/batches/split.py):
run by the front door holding its lease, like any batch, it starts its parts (each run by
a runner of its own, anywhere), passes a cancel on to them, shows their counts and cost
as its own while they run, and when the last has ended joins their output and error
files into its own.

Crash safety: the parts are batches, crash-safe as any. The join writes the whole
batch's files from the start each time it runs (a runner that died joining joins again),
and the batch ends only after its files are synced; the parts' own files are deleted
after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from broker.batches import output
from broker.batches.lines import parse_line, split_lines
from broker.batches.records import TERMINAL, BatchRecord, BatchStore, RequestCounts
from broker.files.registry import FileRegistry
from broker.frontdoor import FrontDoor
from workers import redis_streams
from workers.errors import NotFound

log = logging.getLogger("switchboard.batches")

# How often the parts are looked at.
WATCH_S = 1.0


class PartsJob:
    def __init__(
        self, front: FrontDoor, files: FileRegistry, batches: BatchStore, record: BatchRecord
    ) -> None:
        self.front = front
        self.files = files
        self.store = files.store
        self.batches = batches
        self.record = record
        self.batch = record.batch

    async def run(self) -> None:
        redis, keys = self.front.redis, self.front.keys
        for part_id in self.record.parts:
            await redis_streams.activate_batch(redis, keys, part_id)
        if self.batch.status == "validating":
            self.batch.status = "in_progress"
            self.batch.in_progress_at = int(time.time())
        while True:
            parts = await self._parts()
            await self._pass_cancel_on()
            self._show(parts)
            if all(part.batch.status in TERMINAL for part in parts):
                break
            await self.batches.put(self.record)
            await asyncio.sleep(WATCH_S)
        await self._join(parts)

    async def _parts(self) -> list[BatchRecord]:
        found: list[BatchRecord] = []
        for part_id in self.record.parts:
            part = await self.batches.load(part_id)
            if part is None:
                raise OSError(f"the record of part {part_id} of batch {self.batch.id} is gone")
            found.append(part)
        return found

    async def _pass_cancel_on(self) -> None:
        if self.batch.cancelling_at is not None:
            return
        redis, keys = self.front.redis, self.front.keys
        asked = await redis_streams.batch_cancel_requested(redis, keys, self.batch.id)
        if asked is None:
            return
        for part_id in self.record.parts:
            await redis_streams.request_batch_cancel(redis, keys, part_id, asked)
        self.batch.status = "cancelling"
        self.batch.cancelling_at = asked
        await self.batches.put(self.record)

    def _show(self, parts: list[BatchRecord]) -> None:
        """The parts' counts and cost as the batch's own."""
        total = self.batch.request_counts.total
        completed = sum(part.batch.request_counts.completed for part in parts)
        failed = sum(part.batch.request_counts.failed for part in parts)
        self.batch.request_counts = RequestCounts(total, completed, failed)
        self.batch.cost_usd = sum(part.batch.cost_usd for part in parts)

    # ------------------------------------------------------------------ the end

    async def _join(self, parts: list[BatchRecord]) -> None:
        self.batch.status = "finalizing"
        self.batch.finalizing_at = self.batch.finalizing_at or int(time.time())
        await self.batches.put(self.record)
        record = self.record
        for key in (record.output_key, record.error_key):
            await self.store.delete(key)  # a join cut short starts over
        for part in parts:
            await self._copy(part.output_key, record.output_key)
            await self._copy(part.error_key, record.error_key)
            if part.batch.status == "failed":
                await self._fail_lines(part)
        await output.publish_files(self.files, self.record)
        status = self._status(parts)
        self.batch.status = status
        setattr(self.batch, f"{status}_at", int(time.time()))
        await self.batches.put(self.record)
        log.info(
            "batch %s %s (%d parts): %d completed, %d failed of %d",
            self.batch.id,
            status,
            len(parts),
            self.batch.request_counts.completed,
            self.batch.request_counts.failed,
            self.batch.request_counts.total,
        )
        for part in parts:
            await self._forget(part)

    def _status(self, parts: list[BatchRecord]) -> str:
        if self.batch.cancelling_at is not None:
            return "cancelled"
        if any(part.batch.status == "expired" for part in parts):
            return "expired"
        return "completed"

    async def _copy(self, source: str, target: str) -> None:
        if not await self.store.size(source):
            return
        async for chunk in self.store.read_stream(source):
            await self.store.append(target, chunk)

    async def _fail_lines(self, part: BatchRecord) -> None:
        """A part that could not run (its provider refused it): each of its lines without
        a result gets an error line saying why, never a silent gap."""
        errors = part.batch.errors
        message = errors.data[0].message if errors and errors.data else "The batch part failed."
        done = await output.done_lines(self.store, part.output_key)
        done |= await output.done_lines(self.store, part.error_key)
        bad: list[bytes] = []
        chunks = self.store.read_stream(part.batch.input_file_id)
        async for line in split_lines(chunks, self.front.settings.max_body_bytes):
            if line.strip():
                custom_id = parse_line(line, self.batch.endpoint).custom_id
                if custom_id not in done:
                    bad.append(output.error_line(custom_id, "batch_failed", message))
        if bad:
            await self.store.append(self.record.error_key, b"".join(bad))
            self.batch.request_counts.failed += len(bad)

    async def _forget(self, part: BatchRecord) -> None:
        """A part's files, now in the batch's own: its input and its output files."""
        for file_id in (part.batch.output_file_id, part.batch.error_file_id):
            if file_id is not None:
                with contextlib.suppress(NotFound):
                    await self.files.delete(part.owner, file_id)
        await self.store.delete(part.batch.input_file_id)
