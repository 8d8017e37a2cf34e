"""`switchboard_settings`: Switchboard's own section (LiteLLM has no equivalent).

Every field has a default, so a LiteLLM config without this section runs as it is.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

import msgspec
from msgspec import Meta

from workers.deployment import Secret
from workers.http import DEFAULT_MAX_REPLY_BYTES
from workers.settings.batches import BatchSettings, FileSettings
from workers.settings.section import Section
from workers.validation import DEFAULT_LIMITS, RequestLimits

Positive = Meta(gt=0)
# An API key's alias is a Prometheus label value and a log field: short and plain.
KEY_ALIAS = Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
# Label values the gateway itself uses for callers that are not a listed key.
RESERVED_ALIASES = frozenset({"master", "anonymous"})
MIN_KEY_LENGTH = 8
# The prefix of every Redis key when the config names none (also the SDK Router's default).
DEFAULT_NAMESPACE = "sb"
# Heartbeats a worker may miss before its requests are taken over (the default grace).
TAKEOVER_BEATS = 4


class ApiKey(Section, frozen=True):
    """A client key besides the master key: its own alias in metrics, its own model list."""

    # Names the key in metrics (`api_key_alias` label) and logs; the key itself is never shown.
    alias: Annotated[str, KEY_ALIAS]
    key: Secret
    # Model groups or aliases this key may call; empty means every model.
    models: list[str] = []
    # Guardrails (by guardrail_name) every request with this key runs, besides those
    # default_on or named by the request (issue #19).
    guardrails: list[str] = []

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_LENGTH:
            raise ValueError(f"key must be at least {MIN_KEY_LENGTH} characters")


class HttpLimits(Section, frozen=True):
    """How long a front door waits on a client, and how many it holds (issue #13, item 9)."""

    # Seconds a client has to send a request's line and headers, counted from the
    # connection's opening or from the request's first byte (slow-header clients).
    header_timeout_s: Annotated[float, Positive] = 10.0
    # Seconds a client has to send a whole request body once its headers are in; 408
    # `body_timeout` past it. Never applies to the response (a long stream is not cut).
    body_timeout_s: Annotated[float, Positive] = 60.0
    # Seconds an idle keep-alive connection stays open between requests. Above a load
    # balancer's own idle timeout (60 s on AWS ALB, GCP 600 s: raise it there), so the
    # balancer, not us, closes idle connections and never reuses one we just closed.
    keepalive_timeout_s: Annotated[float, Positive] = 75.0
    # Open client connections one front door holds; more are closed on arrival. Well
    # above 2,000 live streams, under the usual 65,536 open-file limit.
    max_connections: Annotated[int, Positive] = 10_000


class MediaFetch(Section, frozen=True):
    """How a worker fetches a URL a client names (an `image_url` that Gemini or Bedrock needs
    as bytes; later documents, audio and webhook destinations): see workers/fetch_guard.py.

    Only public addresses are fetched: loopback, private, link-local (cloud metadata at
    169.254.169.254), carrier-grade NAT, multicast and the rest of the non-global space are
    refused, however the host is spelled and wherever a redirect points.
    """

    # Host names fetched even when they resolve to a non-public address, e.g. an internal
    # image store: exact names, case-insensitive (`images.internal`, not `*.internal`).
    allow_hosts: list[Annotated[str, Meta(min_length=1)]] = []
    # Networks (CIDR, e.g. `10.20.0.0/16` or `fd12::/64`) whose addresses are fetched although
    # not public. Neither list lifts the refusal of 0.0.0.0, :: and multicast addresses.
    allow_networks: list[str] = []
    # Largest body of one URL, in bytes; a provider's own lower limit still applies.
    max_bytes: Annotated[int, Positive] = 20 * 1024 * 1024
    # Largest total of all URLs fetched for one request, in bytes (the bytes stay in memory
    # until the request is sent).
    max_request_bytes: Annotated[int, Positive] = 50 * 1024 * 1024
    # Seconds one URL may take, redirects included (never more than the request has left).
    timeout_s: Annotated[float, Positive] = 10.0

    def __post_init__(self) -> None:
        for network in self.allow_networks:
            try:
                ipaddress.ip_network(network)
            except ValueError as exc:
                raise ValueError(f"allow_networks: {exc}") from None


class SwitchboardSettings(Section, frozen=True):
    # Redis for queues, replies and shared routing state. None: router_settings' Redis if
    # it names one, else an embedded Redis started with the process.
    redis_url: Secret | None = None
    # Prefix of every Redis key, so several deployments (or tests) can share one Redis.
    namespace: Annotated[str, Meta(min_length=1)] = DEFAULT_NAMESPACE
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
    # Seconds a reply stays once the front door has relayed it whole (its client has every
    # byte; a reconnect within this still resumes). 0 keeps it for reply_ttl_s. Short, so
    # that Redis does not hold answered traffic: a burst's replies are all in Redis at once
    # for this long (issue #22's memory target).
    delivered_reply_ttl_s: Annotated[int, Meta(ge=0)] = 5
    # Requests one worker process runs at once.
    worker_concurrency: Annotated[int, Positive] = 256
    # Seconds a stopping process waits for in-flight requests before cancelling them.
    drain_timeout_s: Annotated[float, Meta(ge=0)] = 30.0
    # Largest request body the front door accepts, in bytes (413 above it).
    max_body_bytes: Annotated[int, Positive] = 10 * 1024 * 1024
    # Seconds a disconnected client has to reconnect before its upstream call is cancelled.
    disconnect_grace_s: Annotated[float, Meta(ge=0)] = 0.5
    # Seconds between a worker's liveness heartbeats (one pipelined write each): short, so
    # that a dead worker is noticed within `takeover_grace_s`.
    heartbeat_interval_s: Annotated[float, Positive] = 0.25
    # Seconds without a heartbeat after which a worker counts as gone.
    worker_ttl_s: Annotated[float, Positive] = 5.0
    # Seconds without a heartbeat after which another worker takes over a worker's request
    # entries, by consumer, at once (issue #15); `claim_idle_ms` stays the backstop. More than
    # twice heartbeat_interval_s. None: 4 x heartbeat_interval_s (1 s by default).
    takeover_grace_s: Annotated[float, Positive] | None = None
    # Whether a stream whose worker died continues on the worker that takes it over, where
    # the provider can continue a partial answer (docs/providers/README.md); otherwise it
    # ends with a `worker_lost` error event. A deployment's own setting wins.
    stream_continuation: bool = True
    # Seconds a stored /v1/responses response (its items, for `previous_response_id`, GET
    # and input_items) stays in Redis (issue #18); 30 days as OpenAI keeps them.
    responses_ttl_s: Annotated[int, Positive] = 30 * 24 * 3600
    # Client keys besides general_settings.master_key, each with an alias that labels its
    # requests, tokens and cost in /metrics.
    api_keys: list[ApiKey] = []
    # Retries a request body's `num_retries` may ask for; unset: router_settings.num_retries.
    # A larger ask is capped, as a body's `timeout` is capped at request_timeout_s.
    max_num_retries: Annotated[int, Meta(ge=0)] | None = None
    # Inputs one embeddings request may carry; more is a 400 naming `input` (OpenAI's limit).
    max_embedding_inputs: Annotated[int, Positive] = DEFAULT_LIMITS.max_embedding_inputs
    # Estimated tokens (4 bytes each) one embeddings input may hold; more is a 400.
    max_embedding_input_tokens: Annotated[int, Positive] = DEFAULT_LIMITS.max_embedding_input_tokens
    # Estimated tokens of one request's messages or input; more is a 400.
    max_request_tokens: Annotated[int, Positive] = DEFAULT_LIMITS.max_request_tokens
    # Bytes of one reply the gateway will hold: an upstream body (or a stream's bytes in
    # all) past it is refused while it is read, and the client gets a 502
    # `upstream_response_too_large`. 64 MiB passes the largest embeddings reply the official
    # SDKs ask for (2,048 inputs x 3,072 dimensions, base64: about 34 MB).
    max_reply_bytes: Annotated[int, Positive] = DEFAULT_MAX_REPLY_BYTES
    # Bytes the embedded Redis (`switchboard up` without REDIS_URL) may hold before it
    # refuses writes (requests then get a 503 queue_unavailable); it never evicts. None:
    # 1 GiB, or a quarter of the host's (or container's) memory if that is less.
    embedded_redis_maxmemory: Annotated[int, Meta(ge=1024 * 1024)] | None = None
    # A key that may read /metrics and the detailed readiness on the API port (the master
    # key always may). The metrics port (`--metrics-port`) needs no key: keep it private.
    metrics_key: Secret | None = None
    # Serve /metrics and the detailed readiness on the API port without a key.
    public_metrics: bool = False
    # Client timeouts and the connection cap of each front door.
    http: HttpLimits = msgspec.field(default_factory=HttpLimits)
    # URLs a client names that a worker fetches (image_url for Gemini and Bedrock): which
    # non-public hosts or networks may be fetched, and the size and time caps.
    media_fetch: MediaFetch = MediaFetch()
    # Uploaded files (/v1/files) and batches (/v1/batches, issue #20).
    files: FileSettings = FileSettings()
    batches: BatchSettings = BatchSettings()

    @property
    def takeover_grace(self) -> float:
        """The takeover grace in seconds, the default derived from the heartbeat interval."""
        if self.takeover_grace_s is not None:
            return self.takeover_grace_s
        return TAKEOVER_BEATS * self.heartbeat_interval_s

    def request_limits(self) -> RequestLimits:
        return RequestLimits(
            max_embedding_inputs=self.max_embedding_inputs,
            max_embedding_input_tokens=self.max_embedding_input_tokens,
            max_request_tokens=self.max_request_tokens,
        )

    def __post_init__(self) -> None:
        # Cross-field rules; msgspec reports a ValueError here at `switchboard_settings`.
        if len(set(self.lanes)) != len(self.lanes):
            raise ValueError("lanes must be distinct")
        if self.batches.lane in self.lanes:
            raise ValueError("batches.lane must not be one of lanes (it is read after them)")
        if self.renew_interval_ms >= self.claim_idle_ms:
            raise ValueError("renew_interval_ms must be less than claim_idle_ms")
        if self.heartbeat_interval_s >= self.worker_ttl_s:
            raise ValueError("heartbeat_interval_s must be less than worker_ttl_s")
        if self.takeover_grace_s is not None and self.takeover_grace_s <= (
            2 * self.heartbeat_interval_s
        ):
            # One late heartbeat (a busy event loop) must not cost a live worker its requests.
            raise ValueError("takeover_grace_s must be more than twice heartbeat_interval_s")
        aliases = [api_key.alias for api_key in self.api_keys]
        if len(set(aliases)) != len(aliases):
            raise ValueError("api_keys: aliases must be distinct")
        if RESERVED_ALIASES.intersection(aliases):
            reserved = " and ".join(sorted(RESERVED_ALIASES))
            raise ValueError(f"api_keys: {reserved} are reserved aliases")
        if len({str(api_key.key) for api_key in self.api_keys}) != len(self.api_keys):
            raise ValueError("api_keys: two entries have the same key")
        if self.metrics_key is not None and len(self.metrics_key) < MIN_KEY_LENGTH:
            raise ValueError(f"metrics_key must be at least {MIN_KEY_LENGTH} characters")
