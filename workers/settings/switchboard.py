"""`switchboard_settings`: Switchboard's own section (LiteLLM has no equivalent).

Every field has a default, so a LiteLLM config without this section runs as it is.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from workers.deployment import Secret
from workers.settings.section import Section

Positive = Meta(gt=0)


class SwitchboardSettings(Section, frozen=True):
    # Redis for queues, replies and shared routing state. None: router_settings' Redis if
    # it names one, else an embedded Redis started with the process.
    redis_url: Secret | None = None
    # Prefix of every Redis key, so several deployments (or tests) can share one Redis.
    namespace: Annotated[str, Meta(min_length=1)] = "sb"
    # Queue lanes (request streams) in priority order; a request picks one by name.
    lanes: Annotated[list[Annotated[str, Meta(min_length=1)]], Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["default"]
    )
    # Entries a lane may hold before the front door refuses new requests with 429.
    max_queue_depth: Annotated[int, Positive] = 10_000
    # Seconds a request may take end to end, queueing included, before it fails with 504.
    request_timeout_s: Annotated[float, Positive] = 600.0
    # Milliseconds an entry may sit unacknowledged with a silent worker before another
    # worker claims it.
    claim_idle_ms: Annotated[int, Positive] = 15_000
    # Milliseconds between a busy worker's claim renewals (must stay well under claim_idle_ms).
    renew_interval_ms: Annotated[int, Positive] = 5_000
    # Deliveries of one entry before it is failed rather than claimed again (poison requests).
    max_deliveries: Annotated[int, Positive] = 3
    # Seconds a finished request's reply stream stays readable for reconnecting clients.
    reply_ttl_s: Annotated[int, Positive] = 300
    # Requests one worker process runs at once.
    worker_concurrency: Annotated[int, Positive] = 256
    # Seconds a stopping process waits for in-flight requests before cancelling them.
    drain_timeout_s: Annotated[float, Meta(ge=0)] = 30.0
    # Largest request body the front door accepts, in bytes (413 above it).
    max_body_bytes: Annotated[int, Positive] = 10 * 1024 * 1024
    # Seconds a disconnected client has to reconnect before its upstream call is cancelled.
    disconnect_grace_s: Annotated[float, Meta(ge=0)] = 0.5
    # Seconds between a worker's liveness heartbeats.
    heartbeat_interval_s: Annotated[float, Positive] = 1.0
    # Seconds without a heartbeat after which a worker counts as gone.
    worker_ttl_s: Annotated[float, Positive] = 5.0

    def __post_init__(self) -> None:
        # Cross-field rules; msgspec reports a ValueError here at `switchboard_settings`.
        if len(set(self.lanes)) != len(self.lanes):
            raise ValueError("lanes must be distinct")
        if self.renew_interval_ms >= self.claim_idle_ms:
            raise ValueError("renew_interval_ms must be less than claim_idle_ms")
        if self.heartbeat_interval_s >= self.worker_ttl_s:
            raise ValueError("heartbeat_interval_s must be less than worker_ttl_s")
