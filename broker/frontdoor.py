"""A front door's state: everything its handlers share, opened at startup, closed at
shutdown, in that order and its reverse.

Its background tasks (the reply listener, the epoch watch, the cluster monitor, and each
cancellation) run under one `Supervisor`. If a long-lived one ends while the front door
runs, readiness reports it not ready and `serve_front_door` drains and stops the process
with an error (exit 1), for `switchboard up` or the orchestrator to start a fresh one: a
front door deaf to its replies, or admitting on figures that no longer move, must not go
on taking requests, and starting the task again in place would hide the fault in a loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker.auth import Authenticator, Caller
from broker.config.loader import Config
from broker.frontdoor_metrics import FrontDoorMetrics
from broker.model_info import describe_deployments
from broker.monitor import ClusterMonitor
from broker.reply_hub import Queued, ReplyHub, Waiter
from broker.reply_trim import DeliveredReplies
from broker.tenancy import Tenancy
from workers import envelopes, redis_streams
from workers.batching import WriteBatcher
from workers.envelopes import Record
from workers.errors import InvalidRequest, ModelNotFound, PermissionDenied, RateLimited
from workers.memory import MemoryReleaser
from workers.params import GatewayOptions
from workers.redis_streams import Keys
from workers.routing.scope import may_reach, scope_of
from workers.routing.wildcards import Patterns, is_wildcard, listed_names
from workers.supervision import Supervisor, TaskDied
from workers.tenancy import settle

log = logging.getLogger("switchboard.frontdoor")

LANE_HEADER = "x-switchboard-lane"
MAX_ECHOED_LANE = 64


class FrontDoor:
    def __init__(
        self,
        config: Config,
        redis: Redis,
        *,
        follow_redis: Redis,
        registry: CollectorRegistry,
        front_door_id: str | None = None,
    ) -> None:
        self.config = config
        self.settings = config.switchboard_settings
        # The request caps validation applies (inputs, tokens), built once.
        self.limits = self.settings.request_limits()
        self.redis = redis  # also makes the enqueuer (see the setter)
        # Blocking reads for resumed streams, kept off the main pool.
        self.follow_redis = follow_redis
        self.keys = Keys(self.settings.namespace)
        self.metrics = FrontDoorMetrics(registry)
        self.hub = ReplyHub(redis, self.keys, front_door_id, on_reset=self._queue_again)
        self.tasks = Supervisor(f"front door {self.hub.front_door_id}", log)
        # The batch lane too (issue #20): its depth is a dashboard figure.
        self.watched_lanes = (*self.settings.lanes, self.settings.batches.lane)
        self.monitor = ClusterMonitor(
            redis,
            self.keys,
            self.watched_lanes,
            self.metrics,
            worker_ttl_s=self.settings.worker_ttl_s,
            deployments={
                group: [d.label for d in targets] for group, targets in config.deployments.items()
            },
        )
        master_key = config.general_settings.master_key
        self.auth = Authenticator(
            str(master_key) if master_key else None, config.switchboard_settings.api_keys
        )
        # Database keys, limits and budgets (issue #17); enabled once a database is set.
        self.tenancy = Tenancy(
            redis,
            self.keys,
            self.auth,
            config.deployments,
            config.litellm_settings,
            proxy_budget=(
                config.general_settings.max_budget,
                config.general_settings.budget_duration,
            ),
        )
        self.groups: Mapping[str, object] = config.deployments
        self.aliases, self.listed_models = _aliases(config)
        # Wildcard model groups (`*`, `anthropic/*`), most specific first.
        self.patterns = Patterns(config.deployments)
        # GET /model/info's entries, one per deployment, nothing secret in them.
        self.model_info = describe_deployments(config)
        # The cancellations not sent yet (the supervisor owns them; this only tells).
        self.cancellations: set[asyncio.Task[None]] = set()
        # Replies relayed whole, whose TTL is shortened in batches (broker/reply_trim.py).
        self.delivered = DeliveredReplies(
            lambda: self.redis, self.keys, self.settings.delivered_reply_ttl_s
        )
        # What a burst of requests left in the heap, given back once it has passed (#22).
        self.memory = MemoryReleaser()
        self.is_draining = False

    @property
    def redis(self) -> Redis:
        return self._redis

    @redis.setter
    def redis(self, client: Redis) -> None:
        # Requests arriving in the same loop turn are queued in one round trip (issue #5).
        # A new client (tests simulate an outage this way) gets its own batcher.
        self._redis = client
        self.enqueuer = WriteBatcher(client)

    @property
    def id(self) -> str:
        return self.hub.front_door_id

    @staticmethod
    def hub_loop_time() -> float:
        return asyncio.get_running_loop().time()

    async def start(self) -> None:
        try:
            await redis_streams.ensure_groups(self.redis, self.keys, self.watched_lanes)
            await self.hub.start(self.tasks)
            await self.monitor.start(self.tasks)
            if self.delivered.is_enabled:
                self.tasks.start("delivered replies", self.delivered.run, restart_after_s=1.0)
            self.tasks.start(
                "memory after a burst", self.memory.run_when_quiet, restart_after_s=5.0
            )
        except BaseException:
            await self.tasks.aclose()
            raise

    async def stop(self) -> None:
        # Pending cancellations must still reach the workers: closing gives them the grace.
        await self.tasks.aclose(spawned_grace_s=self.settings.disconnect_grace_s + 2)
        await self.delivered.flush()
        await self.enqueuer.aclose()

    @property
    def death(self) -> TaskDied | None:
        """The first background task that ended while it was needed, if one did."""
        return self.tasks.death

    # ------------------------------------------------------------------ admission

    def resolve_group(self, model: str, caller: Caller) -> str:
        """The model group `model` names, if this caller may call it."""
        group = self.aliases.get(model, model)
        if group not in self.groups:
            group = self.patterns.group_for(model) or group
        if group in self.groups:
            caller.check_model(model, group)
            if not may_reach(self.scope_for(caller), group):  # the check fallbacks pass too
                raise PermissionDenied(
                    f"API key `{caller.alias}` may not call model group `{group}`",
                    param="model",
                    code="key_model_access_denied",
                )
            return group
        raise ModelNotFound(
            f"model `{model}` is not served here; available models: "
            f"{', '.join(self.models_for(caller)) or 'none'}",
            param="model",
        )

    def scope_for(self, caller: Caller) -> frozenset[str] | None:
        """The model groups this caller's key reaches (None: all); the worker keeps the
        request's fallbacks inside them."""
        return scope_of(caller.models, self.aliases)

    def models_for(self, caller: Caller) -> list[str]:
        """The listed models (groups and visible aliases) this caller may call."""
        return [
            name
            for name in self.listed_models
            if caller.may_list(name)
            or caller.may_list(self.aliases.get(name) or self.patterns.group_for(name) or name)
        ]

    def lane_for(self, request: web.Request, options: GatewayOptions) -> str:
        lanes = self.settings.lanes
        named = request.headers.get(LANE_HEADER)
        if named is not None:
            if named not in lanes:
                # Quoted escaped and cut short: the header may hold anything, bytes that
                # are not UTF-8 included.
                shown = ascii(named[:MAX_ECHOED_LANE])
                raise InvalidRequest(
                    f"unknown lane {shown} in the {LANE_HEADER} header; lanes: {', '.join(lanes)}",
                    param=LANE_HEADER,
                    code="unknown_lane",
                )
            return named
        if options.priority is not None:
            # LiteLLM's priority: lower is more urgent; lanes are listed most urgent first.
            return lanes[min(max(options.priority, 0), len(lanes) - 1)]
        return lanes[0]

    def is_operator(self, request: web.Request) -> bool:
        """Whether this API-port request may read /metrics and the detailed readiness."""
        if self.settings.public_metrics:
            return True
        metrics_key = self.settings.metrics_key
        return self.auth.is_operator(request, str(metrics_key) if metrics_key else None)

    def admit(self, lane: str) -> None:
        waiting = self.monitor.waiting(lane)
        if waiting >= self.settings.max_queue_depth:
            raise RateLimited(
                f"the `{lane}` queue is full ({waiting} requests waiting); retry shortly",
                code="queue_full",
                retry_after_s=1.0,
            )

    async def enqueue(self, lane: str, envelope: bytes) -> bytes:
        """Add a request to its lane; the entry id. Raises RedisError when it was not added."""
        (entry,) = await self.enqueuer.write(
            lambda pipe: redis_streams.queue_request(pipe, self.keys, lane, envelope)
        )
        if isinstance(entry, Exception):
            raise entry
        return bytes(entry)

    async def _queue_again(self, waiting: list[Waiter]) -> bool:
        """Redis lost its data: make the lanes' groups again, and queue again (one batch,
        with their original deadlines) the waiting requests it no longer has. A request
        queued into the new Redis before this check, or already writing its reply, is left
        alone. True when every lost request is queued again."""
        await redis_streams.ensure_groups(self.redis, self.keys, self.settings.lanes)
        queued = [waiter.queued for waiter in waiting if waiter.queued is not None]
        places = [(q.envelope.request_id, q.envelope.lane, q.entry) for q in queued]
        present = await redis_streams.still_queued(self.redis, self.keys, places)
        lost = [q for q, is_there in zip(queued, present, strict=True) if not is_there]
        copies = [
            envelopes.encode(msgspec.structs.replace(q.envelope, requeued=True)) for q in lost
        ]
        entries = await asyncio.gather(
            *(self.enqueue(q.envelope.lane, copy) for q, copy in zip(lost, copies, strict=True)),
            return_exceptions=True,
        )
        failed = 0
        for place, entry in zip(lost, entries, strict=True):
            if isinstance(entry, BaseException):
                failed += 1
            else:
                place.entry = entry
        log.warning(
            "queued %d lost requests again (%d could not be, retried on the next check)",
            len(lost) - failed,
            failed,
        )
        return failed == 0

    # ------------------------------------------------------------------ cancellation

    def cancel_later(self, request_id: str, seq: int, queued: Queued | None = None) -> None:
        """The client left: cancel after the grace period unless a resume claims it first."""
        task = self.tasks.spawn(self._cancel(request_id, seq, queued), name=f"cancel {request_id}")
        self.cancellations.add(task)
        task.add_done_callback(self.cancellations.discard)

    async def cancel_now(self, request_id: str) -> None:
        """Cancel a request nobody waits on (a background /v1/responses request): the queue's
        cancellation, as for a client that left, without the grace."""
        await self._cancel(request_id, 0, None, grace_s=0.0)

    async def _cancel(
        self, request_id: str, seq: int, queued: Queued | None, *, grace_s: float | None = None
    ) -> None:
        grace = self.settings.disconnect_grace_s if grace_s is None else grace_s
        ttl = int(self.settings.reply_ttl_s)
        try:
            if grace:
                await asyncio.sleep(grace)
            if not await redis_streams.claim_disconnected(
                self.redis, self.keys, request_id, redis_streams.STATE_CANCELLED, ttl
            ):
                return  # resumed by another connection
            record = envelopes.encode(Record(seq=seq, end=envelopes.CANCELLED))
            await redis_streams.send_cancel(
                self.redis, self.keys, request_id, seq=seq, record=record, ttl_s=ttl
            )
            log.info("cancelled %s after its client disconnected", request_id)
            if queued is not None:
                # No worker read it yet: its lease and reservation go back now (#17).
                await settle.release_unstarted(self.redis, self.keys, queued.envelope, queued.entry)
        except RedisError as exc:
            log.warning("could not cancel %s: %s", request_id, exc)


def _aliases(config: Config) -> tuple[dict[str, str], list[str]]:
    aliases: dict[str, str] = {}
    # A wildcard group is listed as the names it serves that the price table knows.
    listed = [group for group in config.deployments if not is_wildcard(group)]
    for group, deployments in config.deployments.items():
        if is_wildcard(group):
            listed += [n for n in listed_names(group, deployments) if n not in config.deployments]
    for alias, target in config.router_settings.model_group_alias.items():
        if isinstance(target, str):
            aliases[alias] = target
            listed.append(alias)
        else:
            aliases[alias] = target.model
            if not target.hidden:
                listed.append(alias)
    return aliases, list(dict.fromkeys(listed))
