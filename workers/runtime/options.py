"""What the worker runtime reads of `switchboard_settings`, copied in one place
(`RuntimeOptions.from_settings`); the defaults are the settings' own."""

from __future__ import annotations

import msgspec

from workers.settings.switchboard import MediaFetch, SwitchboardSettings


class RuntimeOptions(msgspec.Struct, kw_only=True, frozen=True):
    namespace: str
    lanes: tuple[str, ...]
    concurrency: int
    claim_idle_ms: int
    renew_interval_ms: int
    max_deliveries: int
    reply_ttl_s: int
    drain_timeout_s: float
    heartbeat_interval_s: float
    worker_ttl_s: float
    # A silent worker's entries are taken over after this long without its heartbeat.
    takeover_grace_s: float
    # switchboard_settings.stream_continuation: a cut-off stream continues where it can.
    stream_continuation: bool
    # switchboard_settings.max_reply_bytes: the most of one reply a worker reads and writes.
    max_reply_bytes: int
    media_fetch: MediaFetch
    # switchboard_settings.responses_ttl_s: how long a stored /v1/responses response lives.
    responses_ttl_s: int = 30 * 24 * 3600
    # The batch lane (issue #20), the last of `lanes`: read only with spare slots, and never
    # for more than `batch_max_share` of them, so interactive requests always find one free.
    batch_lane: str | None = None
    batch_max_share: float = 1.0
    batch_busy_loop_lag_ms: float = 0.0
    # Batch processes of their own deliver the callbacks (issue #22): this worker's consumer
    # reads only when theirs falls this far behind (0: it always reads).
    callbacks_stand_by_s: float = 0.0
    # Not a setting: how long an idle read of the lanes blocks in Redis before it is sent
    # again (a stopping worker notices within it).
    block_ms: int = 1000

    @classmethod
    def from_settings(
        cls, settings: SwitchboardSettings, *, concurrency: int | None = None
    ) -> RuntimeOptions:
        """The options of a worker under `settings`; `concurrency` (the command line's
        --concurrency) overrides worker_concurrency."""
        return cls(
            namespace=settings.namespace,
            lanes=(*settings.lanes, settings.batches.lane),
            batch_lane=settings.batches.lane,
            batch_max_share=settings.batches.max_share,
            batch_busy_loop_lag_ms=settings.batches.busy_loop_lag_ms,
            concurrency=concurrency or settings.worker_concurrency,
            claim_idle_ms=settings.claim_idle_ms,
            renew_interval_ms=settings.renew_interval_ms,
            max_deliveries=settings.max_deliveries,
            reply_ttl_s=settings.reply_ttl_s,
            drain_timeout_s=settings.drain_timeout_s,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            worker_ttl_s=settings.worker_ttl_s,
            takeover_grace_s=settings.takeover_grace,
            stream_continuation=settings.stream_continuation,
            max_reply_bytes=settings.max_reply_bytes,
            media_fetch=settings.media_fetch,
            responses_ttl_s=settings.responses_ttl_s,
        )
