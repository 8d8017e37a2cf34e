"""A worker's claims on request entries: renew the idle time of the entries it runs (so no
other worker takes them), reclaim entries idle past claim_idle_ms (the backstop behind the
takeover by consumer, runtime/takeovers.py), and park an entry delivered too often (a
request that kills its workers) in the dead-letter stream, telling its client.

Renewal renews only the entries this worker still holds. One another worker holds now was
taken over while this worker was presumed dead (paused past the grace): its job stops
quietly, no record, no ack; the worker that took it answers. (One nobody holds was answered
meanwhile, or went with Redis's data: the reply's fence, or the front door's copy, settles
it.) A pause noticed by the heartbeats
(`renew_now`) renews at once.

A draining worker stops this loop first: a reclaim then would start a job after the drain
began (the worker waits for every job it holds, including those a reclaim started before).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

import msgspec
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from workers import envelopes, redis_streams
from workers.envelopes import Meta, decode_envelope, decode_record
from workers.errors import ServiceUnavailable
from workers.tenancy import settle

if TYPE_CHECKING:
    from workers.runtime.worker import Worker

log = logging.getLogger("switchboard.worker")


class Claims:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.redis = worker.redis
        self.keys = worker.keys
        self.options = worker.options
        self._renew_now = asyncio.Event()

    def renew_now(self) -> None:
        """Renew before the next interval (this worker was paused: its entries may be gone)."""
        self._renew_now.set()

    async def run(self) -> None:
        """Renew, and now and then reclaim, until cancelled. Redis errors are outlived: the
        next pass tries again (a lost consumer group is made again)."""
        renew_s = self.options.renew_interval_ms / 1000
        last_reclaim = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._renew_now.wait(), renew_s)
            self._renew_now.clear()
            try:
                await self.renew()
                if time.monotonic() - last_reclaim >= self.options.claim_idle_ms / 2000:
                    last_reclaim = time.monotonic()
                    await self.reclaim()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                log.warning("redis unavailable while renewing claims: %s", exc)
            except ResponseError as exc:
                if redis_streams.is_missing_group(exc):
                    await self.worker.recreate_groups()
                else:
                    # READONLY (a failover), OOM, NOPERM...: renewing and reclaiming go on.
                    log.warning("redis refused a claim renewal or reclaim: %s", exc)
            except RedisError as exc:
                log.warning("redis failed a claim renewal or reclaim: %s", exc)

    async def renew(self) -> None:
        by_lane: dict[str, list[bytes]] = {}
        for job in self.worker.jobs.values():
            by_lane.setdefault(job.lane, []).append(job.entry)
        worker_id = self.worker.worker_id
        for lane, entries in by_lane.items():
            lost = await redis_streams.renew_held(self.redis, self.keys, lane, worker_id, entries)
            if lost:
                self.worker.lose(lane, lost)

    async def reclaim(self) -> None:
        worker = self.worker
        for lane in self.options.lanes:
            if not worker.free_slots:
                return
            claimed, deleted = await redis_streams.reclaim(
                self.redis,
                self.keys,
                lane,
                worker.worker_id,
                self.options.claim_idle_ms,
                worker.free_slots,
            )
            # Cancelled while pending (the front door deleted them): nothing to run.
            await redis_streams.ack_deleted(self.redis, self.keys, lane, deleted)
            if not claimed:
                continue
            counts = await redis_streams.delivery_counts(
                self.redis, self.keys, lane, [entry for entry, _ in claimed]
            )
            for (entry, raw), deliveries in zip(claimed, counts, strict=True):
                if deliveries > self.options.max_deliveries:
                    await self.dead_letter(
                        lane, entry, raw, f"delivered {deliveries} times", deliveries
                    )
                else:
                    log.info("reclaimed %s from lane %s (delivery %d)", entry, lane, deliveries)
                    worker.start(lane, entry, raw, is_reclaimed=True, deliveries=deliveries)

    async def dead_letter(
        self, lane: str, entry: bytes, raw: bytes, reason: str, deliveries: int | None
    ) -> None:
        """Park the entry in the dead-letter stream and tell the client, with the request id."""
        pipe = self.redis.pipeline(transaction=False)
        try:
            envelope = decode_envelope(raw)
        except msgspec.DecodeError:
            envelope = None
        if envelope is not None:
            last = await redis_streams.last_record(self.redis, self.keys, envelope.request_id)
            seq = decode_record(last).next_seq if last else 1
            error = ServiceUnavailable(
                f"request {envelope.request_id} failed: {reason} without finishing; "
                "it was moved to the dead-letter stream",
                code="dead_lettered",
            )
            record = envelopes.error_record(seq, error, Meta(worker=self.worker.worker_id))
            redis_streams.append_record(
                pipe,
                self.keys,
                envelope.request_id,
                seq,
                envelopes.encode(record),
                reply_to=envelope.reply_to,
                ttl_s=self.options.reply_ttl_s,
            )
            # Its reservation and lease go back now, not at its deadline (issue #17).
            settle.queue(
                pipe, self.keys, envelope, settle.worker_event(record, int(time.time() * 1000))
            )
        redis_streams.dead_letter(pipe, self.keys, lane, entry, raw, reason)
        await pipe.execute()
        self.worker.metrics.lane(lane).dead_letters.inc()
        log.error("dead-lettered %s on lane %s: %s", entry, lane, reason)
