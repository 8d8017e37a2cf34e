"""A front door's side of issue #17: database keys authenticated from the Redis mirror (a
local copy of each entity, dropped when `{ns}:tenancy` says it changed), and the one
admission every ingress route calls: `ticket` says what a request counts against, and
`admit` checks every limit and queues it in one script (workers/tenancy/admission.py).

Routes call, in this order: `caller = await front.tenancy.authenticate(request)`, then
`ticket = await front.tenancy.ticket(caller, ...)`, and hand the ticket to the Relay, whose
enqueue is the admission. With no database configured, database keys do not exist and the
ticket is None: the request is queued as before."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from broker.auth import Authenticator, Caller, Hidden, presented_key, tag_key
from workers import redis_streams
from workers.batching import WriteBatcher
from workers.db.plain import DatabaseUnavailable
from workers.deployment import Deployment
from workers.errors import AuthenticationFailed, PermissionDenied, ServiceUnavailable
from workers.redis_streams import Keys
from workers.settings.routing import LiteLLMSettings
from workers.tenancy import admission, events, mirror, records
from workers.tenancy.admission import Admitted, Scope, Ticket
from workers.tenancy.records import Entity, Limits, Principal
from workers.tenancy.reserve_prices import ReservePrices

if TYPE_CHECKING:
    from broker.frontdoor import FrontDoor as FrontDoorLike
    from broker.management.state import Management as ManagementLike
    from workers.db.engine import Database
    from workers.tenancy.ledger import LedgerWriter
    from workers.tenancy.proxy_budget import ProxyBudget

log = logging.getLogger("switchboard.tenancy")

# A local copy is re-read from the mirror after this long even without a message: the
# bound on a change missed while the subscription was down.
LOCAL_TTL_S = 30.0
# Completion tokens reserved when a request names no max_tokens.
DEFAULT_COMPLETION_TOKENS = 1024
MAX_RESERVED_COMPLETION_TOKENS = 16_384
BYTES_PER_TOKEN = 4
RESUBSCRIBE_AFTER_S = 0.5
MAX_LOCAL_ENTRIES = 100_000
MAX_ID_CHARS = 255
ALL_MODELS = frozenset({"*", "all-proxy-models"})
# A fresh front door waits this long at most for the proxy's spend (ProxyBudget).
PROXY_SPEND_WAIT_S = 10.0
# After re-reading everything because Redis lost its data, the next check waits this long.
LOSS_CHECK_EVERY_S = 5.0


class Tenancy:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        auth: Authenticator,
        deployments: dict[str, list[Deployment]],
        settings: LiteLLMSettings | None = None,
        proxy_budget: tuple[float | None, str | None] = (None, None),
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.tkeys = keys.tenancy
        self.auth = auth
        # Set by the app once the management API opened it; None: no database keys.
        self.database: Database | None = None
        self._entities: dict[mirror.Ref, tuple[Entity | None, float]] = {}
        self._callers: dict[str, tuple[Caller, float]] = {}
        self._sha = ""
        self.refilling: asyncio.Future[Any] | None = None
        self._next_loss_check = 0.0
        self.ledger: LedgerWriter | None = None
        self._prices = ReservePrices(deployments)
        settings = settings if settings is not None else LiteLLMSettings()
        # The proxy-wide budget: a scope every request joins. general_settings' (issue #17's
        # words) wins over litellm_settings' (LiteLLM's documented place).
        self.proxy_budget: ProxyBudget | None = None
        max_budget, duration = proxy_budget
        if max_budget is None:
            max_budget, duration = settings.max_budget, settings.budget_duration
        if max_budget is not None:
            from workers.tenancy.proxy_budget import ProxyBudget  # it needs the database's

            self.proxy_budget = ProxyBudget(max_budget, duration)
        # The budget of an end user without a customer row of its own.
        self._end_user_limits: Limits | None = None
        if settings.max_end_user_budget is not None:
            self._end_user_limits = Limits(max_budget=settings.max_end_user_budget)

    @property
    def is_enabled(self) -> bool:
        return self.database is not None

    # ------------------------------------------------------------------ authentication

    async def authenticate(self, request: web.Request) -> Caller:
        """The caller: the master key, a config key, or a database key from the mirror."""
        auth = self.auth
        if auth.is_open or not self.is_enabled:
            return auth.check(request)
        presented = presented_key(request)
        caller = auth.static(presented)
        if caller is not None:
            return caller
        token = hashlib.sha256(presented.encode()).hexdigest()
        found = self._callers.get(token)
        now = time.monotonic()
        if found is None or now - found[1] > LOCAL_TTL_S:
            caller = await self._load_caller(token, tag_key(presented))
            self._callers[token] = (caller, now)
        else:
            caller = found[0]
        _bound(self._callers)
        _check_usable(caller)
        return caller

    async def caller_for_token(self, token: str) -> Caller | None:
        """The database key `token` (its hash) as a caller, for work it started earlier
        (a batch's lines, issue #20); None once the key is gone, blocked or expired."""
        if not self.is_enabled:
            return None
        try:
            caller = await self._load_caller(token, Hidden())
            _check_usable(caller)
        except (AuthenticationFailed, PermissionDenied):
            return None
        return caller

    async def _load_caller(self, token: str, secret: Hidden) -> Caller:
        (key,) = await self._entities_of([(records.KEY, token)])
        if key is None:
            raise AuthenticationFailed("invalid API key")
        owner_refs = _owner_refs(key)
        owners = [entity for entity in await self._entities_of(owner_refs) if entity is not None]
        team = next((o for o in owners if o.kind == records.TEAM), None)
        if key.organization_id is None and team is not None and team.organization_id:
            (org,) = await self._entities_of([(records.ORG, team.organization_id)])
            owners += [org] if org is not None else []
        owners = _with_member_defaults(await self._with_budgets(owners), key, team)
        (key,) = await self._with_budgets([key])
        principal = Principal(token, key, tuple(owners))
        models = _models(key, team)
        alias = key.alias or f"key-{token[:8]}"
        return Caller(alias, models, secret, principal, token)

    async def _with_budgets(self, entities: list[Entity]) -> list[Entity]:
        """Each entity with what its budget row sets and it does not."""
        refs = [(records.BUDGET, e.budget_id) for e in entities if e.budget_id]
        found = dict(zip(refs, await self._entities_of(refs), strict=True))
        merged = []
        for entity in entities:
            budget = found.get((records.BUDGET, entity.budget_id or ""))
            if budget is not None:
                limits = entity.limits.under(budget.limits)
                entity = _replace(entity, limits)
            merged.append(entity)
        return merged

    async def _entities_of(self, refs: Sequence[mirror.Ref]) -> list[Entity | None]:
        """Entities from the local copy, else the mirror, else the database (refilling the
        mirror). The database is asked only for what Redis lost or never had."""
        now = time.monotonic()
        result: dict[mirror.Ref, Entity | None] = {}
        wanted = []
        for ref in refs:
            local = self._entities.get(ref)
            if local is not None and now - local[1] <= LOCAL_TTL_S:
                result[ref] = local[0]
            else:
                wanted.append(ref)
        if wanted:
            for ref, entity in zip(wanted, await self._from_mirror(wanted), strict=True):
                result[ref] = entity
                self._entities.pop(ref, None)  # re-inserted last: the newest
                self._entities[ref] = (entity, now)
            _bound(self._entities)
        return [result[ref] for ref in refs]

    async def _from_mirror(self, refs: list[mirror.Ref]) -> list[Entity | None]:
        try:
            raw = await mirror.read(self.redis, self.tkeys, refs)
        except RedisError as exc:
            raise ServiceUnavailable(
                "the gateway's store (Redis) is unavailable; retry shortly",
                code="queue_unavailable",
                retry_after_s=1.0,
            ) from exc
        found: dict[mirror.Ref, Entity | None] = {}
        missing = []
        for ref, value in zip(refs, raw, strict=True):
            if value is None:
                missing.append(ref)
            else:
                found[ref] = None if value == mirror.ABSENT else records.decode(value)
        if missing:
            for ref, entity in zip(missing, await self._refill(missing), strict=True):
                found[ref] = entity
        return [found[ref] for ref in refs]

    async def _refill(self, refs: list[mirror.Ref]) -> list[Entity | None]:
        assert self.database is not None
        try:
            entities = await mirror.from_database(self.database, refs)
        except DatabaseUnavailable as exc:
            raise ServiceUnavailable(
                "this key is not in the gateway's cache and the database is unavailable; "
                "retry shortly",
                code="database_unavailable",
                retry_after_s=5.0,
            ) from exc
        await mirror.store(self.redis, self.tkeys, refs, entities)
        return entities

    async def refill(self) -> None:
        """A cold Redis (the first start, or one that lost its data) gets every entity
        from the database; a failure leaves it to the lazy refill of each entry."""
        assert self.database is not None
        try:
            written = await mirror.refill(self.redis, self.tkeys, self.database)
        except (RedisError, DatabaseUnavailable) as exc:
            log.warning("could not refill the key mirror from the database: %s", exc)
            return
        if written:
            log.info("refilled the key mirror from the database: %d entries", written)

    # ------------------------------------------------------------------ invalidation

    def forget(self, ref: mirror.Ref) -> None:
        """An entity changed: drop its local copy and every caller built on one."""
        self._entities.pop(ref, None)
        self._callers.clear()

    def forget_all(self) -> None:
        self._entities.clear()
        self._callers.clear()

    async def listen(self) -> None:
        """Follow `{ns}:tenancy` for as long as the front door runs; after a lost
        subscription, forget everything (a message may have been missed)."""
        while True:
            self.forget_all()
            try:
                async for change in redis_streams.tenancy_changes(self.redis, self.keys):
                    self.forget(mirror.message_ref(change))
            except RedisError as exc:
                log.warning("tenancy subscription lost: %s", exc)
            await asyncio.sleep(RESUBSCRIBE_AFTER_S)

    async def on_change(self, kind: str, object_id: str, spend_reset: bool = False) -> None:
        """A management call committed a change: mirror the entity as the database has it
        now, and tell every front door. A call that set the spend or restarted the budget
        period sets the budget counter to what the database says."""
        if self.database is None or kind not in records.KINDS:
            return
        (entity,) = await mirror.from_database(self.database, [(kind, object_id)])
        await mirror.publish(
            self.redis, self.tkeys, kind, object_id, entity, reset_spend=spend_reset
        )
        self.forget((kind, object_id))

    # ------------------------------------------------------------------ admission

    async def ticket(
        self,
        caller: Caller,
        *,
        call_type: str,
        model: str,
        group: str,
        body_bytes: int,
        max_tokens: int | None = None,
        end_user: str | None = None,
    ) -> Ticket | None:
        """What a request counts against and reserves; None without a database."""
        if not self.is_enabled or caller.token is None:
            return None
        principal = caller.principal
        scopes: list[Scope] = []
        if principal is not None:
            scopes = _scopes(principal, group, model)
        if end_user:
            end_user = end_user[:MAX_ID_CHARS]  # the database's width of an id
            scopes += await self._end_user_scope(end_user, group, model)
        if self.proxy_budget is not None:
            if not self.proxy_budget.is_read.is_set():  # only while a front door starts
                await asyncio.wait_for(self.proxy_budget.is_read.wait(), PROXY_SPEND_WAIT_S)
            scopes.append(self.proxy_budget.scope)
        completion = min(max_tokens or DEFAULT_COMPLETION_TOKENS, MAX_RESERVED_COMPLETION_TOKENS)
        prompt = body_bytes // BYTES_PER_TOKEN + 1
        price_in, price_out = self._prices.per_token(group, model)
        key = principal.key if principal is not None else None
        front = events.FrontEvent(
            call_type=call_type,
            api_key=caller.token,
            model=model,
            model_group=group,
            start_ms=int(time.time() * 1000),
            key_alias=key.alias if key is not None else caller.alias,
            user_id=key.user_id if key is not None else None,
            team_id=key.team_id if key is not None else None,
            organization_id=_organization(principal),
            end_user=end_user,
            tags=key.tags if key is not None else (),
        )
        inputs = {
            "call_type": call_type,
            "model": model,
            "group": group,
            "body_bytes": body_bytes,
            "max_tokens": max_tokens,
            "end_user": end_user,
        }
        return Ticket(
            scopes=tuple(scopes),
            tokens=prompt + completion,
            cost_usd=prompt * price_in + completion * price_out,
            event=events.encode(front),
            remake=functools.partial(self._remake, caller, inputs),
        )

    async def _end_user_scope(self, end_user: str, group: str, model: str) -> list[Scope]:
        """The end user's scope: its customer row's limits, else max_end_user_budget; none
        for an unknown end user without a default budget (no counters for every name)."""
        (customer,) = await self._entities_of([(records.CUSTOMER, end_user)])
        name = mirror.scope_of(records.CUSTOMER, end_user)
        if customer is None:
            limits = self._end_user_limits
            return [] if limits is None else [Scope(name, limits)]
        if customer.blocked:
            raise PermissionDenied(
                f"end user `{end_user}` is blocked", param="user", code="end_user_blocked"
            )
        (customer,) = await self._with_budgets([customer])
        limits = customer.limits
        if limits.max_budget is None and self._end_user_limits is not None:
            limits = msgspec.structs.replace(limits, max_budget=self._end_user_limits.max_budget)
        return _entity_scopes(_replace(customer, limits), group, model)

    async def admit(
        self,
        enqueuer: WriteBatcher,
        lane: str,
        envelope: bytes,
        request_id: str,
        ticket: Ticket,
        deadline_ms: int,
    ) -> Admitted:
        """Check every limit and queue the request, in one script and one round trip
        (shared with other requests of this loop turn); raises what refused it."""
        reply = await self._admit(enqueuer, lane, envelope, request_id, ticket, deadline_ms)
        if admission.is_lost(reply):
            ticket = await self._after_loss(ticket)
            reply = await self._admit(
                enqueuer, lane, envelope, request_id, ticket, deadline_ms, check_lost=False
            )
        return admission.outcome(reply, ticket)

    async def _admit(
        self,
        enqueuer: WriteBatcher,
        lane: str,
        envelope: bytes,
        request_id: str,
        ticket: Ticket,
        deadline_ms: int,
        *,
        check_lost: bool = True,
    ) -> Any:
        check_lost = check_lost and time.monotonic() >= self._next_loss_check
        call = admission.script_call(
            self.keys, lane, envelope, request_id, ticket, deadline_ms, check_lost=check_lost
        )
        if not self._sha:
            self._sha = str(await self.redis.script_load(admission.ADMIT))
        sha = self._sha
        (reply,) = await enqueuer.write(lambda pipe: admission.queue(pipe, sha, call))
        if isinstance(reply, NoScriptError):  # Redis restarted and forgot it
            (reply,) = await enqueuer.write(lambda pipe: admission.queue_text(pipe, call))
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def _after_loss(self, ticket: Ticket) -> Ticket:
        """Redis lost its data (FLUSHDB, a restart without persistence) under a counter this
        request was about to seed: the seeds in this front door's copies (the spend the
        database held when they were read) may be old. Drop every copy, have the mirror
        refilled (which marks it filled again), and make the ticket again from what the
        database says now; with the database unreachable, the ticket as it was. At most
        once per LOSS_CHECK_EVERY_S: a marker that stays gone (its refill failing) must
        not cost every request a re-read."""
        self._next_loss_check = time.monotonic() + LOSS_CHECK_EVERY_S
        log.warning("Redis lost its data: re-reading keys and spend from the database")
        self.forget_all()
        if self.database is not None and (self.refilling is None or self.refilling.done()):
            self.refilling = asyncio.ensure_future(self.refill())
        if ticket.remake is None:
            return ticket
        try:
            fresh: Ticket | None = await ticket.remake()
        except (ServiceUnavailable, AuthenticationFailed, PermissionDenied) as exc:
            log.warning("could not re-read a key after Redis lost its data: %s", exc)
            return ticket
        # The envelope names the scopes the worker settles: they must be the same ones.
        if fresh is None or fresh.scope_names != ticket.scope_names:
            return ticket
        return fresh

    async def _remake(self, caller: Caller, inputs: dict[str, Any]) -> Ticket | None:
        token = caller.token
        if caller.principal is not None and token is not None:
            caller = await self._load_caller(token, caller.secret)
            self._callers[token] = (caller, time.monotonic())
        return await self.ticket(caller, **inputs)


LEDGER_TASK = "spend ledger"
REFILL_WAIT_S = 10.0
LISTEN_TASK = "tenancy invalidations"
PROXY_BUDGET_TASK = "proxy spend"
RESTART_AFTER_S = 5.0


def start_tenancy(front: FrontDoorLike, management: ManagementLike) -> None:
    """Database keys on the request path (issue #17): the front door authenticates them
    from the Redis mirror, each committed change refreshes the mirror and tells every
    front door, and this front door runs a writer of the spend ledger."""
    database = management.database
    if database is None:
        return
    # Here, not at the top: without a database they (and SQLAlchemy) are never loaded.
    from workers.tenancy.ledger import LedgerMetrics, LedgerWriter

    tenancy = front.tenancy
    tenancy.database = database

    async def mirror_change(change: Any) -> None:
        await tenancy.on_change(
            change.object_type, change.object_id, _spend_reset(change.before, change.after)
        )

    management.listeners.append(mirror_change)
    metrics = LedgerMetrics(front.metrics.registry)
    writer = LedgerWriter(front.redis, front.keys, database, f"ledger-{front.id}", metrics)
    tenancy.ledger = writer
    front.tasks.start(LISTEN_TASK, tenancy.listen)
    front.tasks.start(LEDGER_TASK, writer.run)
    if tenancy.proxy_budget is not None:
        budget = tenancy.proxy_budget
        front.tasks.start(
            PROXY_BUDGET_TASK, lambda: budget.follow(database), restart_after_s=RESTART_AFTER_S
        )
    tenancy.refilling = front.tasks.spawn(tenancy.refill(), name="tenancy refill")


async def stop_tenancy(front: FrontDoorLike) -> None:
    """Before the database closes: stop what uses it (a batch the ledger writer had not
    committed stays in the stream for the next writer)."""
    refilling = front.tenancy.refilling
    if refilling is not None:  # let it end rather than cut a transaction short
        await asyncio.wait([refilling], timeout=REFILL_WAIT_S)
        refilling.cancel()
        await asyncio.gather(refilling, return_exceptions=True)
    if front.tenancy.ledger is not None:
        await front.tenancy.ledger.stop(lambda: front.tasks.stop(LEDGER_TASK))
    await front.tasks.stop(LISTEN_TASK)
    await front.tasks.stop(PROXY_BUDGET_TASK)


def _bound(cache: dict[Any, Any]) -> None:
    """Keep a local cache under MAX_LOCAL_ENTRIES by dropping its oldest tenth: made-up
    keys and end-user names (clients choose both) must not grow a front door's memory."""
    if len(cache) <= MAX_LOCAL_ENTRIES:
        return
    for stale in list(itertools.islice(cache, len(cache) // 10)):
        del cache[stale]


def _spend_reset(before: dict[str, Any] | None, after: dict[str, Any] | None) -> bool:
    """Whether a management call set an entity's spend or restarted its budget period."""
    if before is None or after is None:
        return False
    return any(before.get(f) != after.get(f) for f in ("spend", "budget_reset_at"))


def _check_usable(caller: Caller) -> None:
    principal = caller.principal
    if principal is None:
        return
    key = principal.key
    if key.blocked:
        raise AuthenticationFailed("this API key is blocked", code="key_blocked")
    if key.expires_ms is not None and key.expires_ms <= time.time() * 1000:
        raise AuthenticationFailed("this API key has expired", code="key_expired")
    team = principal.owner(records.TEAM)
    if team is not None and team.blocked:
        raise AuthenticationFailed(f"team `{team.id}` is blocked", code="team_blocked")


def _owner_refs(key: Entity) -> list[mirror.Ref]:
    refs: list[mirror.Ref] = []
    if key.team_id:
        refs.append((records.TEAM, key.team_id))
    if key.user_id:
        refs.append((records.USER, key.user_id))
    if key.team_id and key.user_id:
        refs.append((records.MEMBER, f"{key.team_id}/{key.user_id}"))
    if key.organization_id:
        refs.append((records.ORG, key.organization_id))
    return refs


def _models(key: Entity, team: Entity | None) -> frozenset[str] | None:
    for models in (key.models, team.models if team is not None else ()):
        if models and not ALL_MODELS.intersection(models):
            return frozenset(models)
    return None


def _replace(entity: Entity, limits: Limits) -> Entity:
    return msgspec.structs.replace(entity, limits=limits)


def _organization(principal: Principal | None) -> str | None:
    if principal is None:
        return None
    org = principal.owner(records.ORG)
    return org.id if org is not None else principal.key.organization_id


def _scopes(principal: Principal, group: str, model: str) -> list[Scope]:
    """The scopes a database key's request counts against, the key's first (its spend is
    the x-litellm-key-spend header). A user's own budget applies to its keys outside a
    team; inside one, the member's budget in the team does (LiteLLM's rule). An owner
    that limits nothing is left out: two Redis calls fewer each way, and its spend is in
    the ledger (a limit set later seeds its counter from the database). Each of them with
    a budget on the request's model (model_max_budget) adds that budget's scope."""
    key = principal.key
    scopes = [Scope(f"key:{principal.token}", key.limits, key.spend)]
    model_budget = key.limits.model_budget(group, model)
    if model_budget is not None:
        entry, limits = model_budget
        seed = key.model_spend.get(entry, 0.0)
        scopes.append(Scope(f"model:{principal.token}:{entry}", limits, seed))
    for entity in principal.owners:
        if entity.kind == records.USER and key.team_id:
            continue
        scopes += _entity_scopes(entity, group, model)
    return scopes


def _entity_scopes(entity: Entity, group: str, model: str) -> list[Scope]:
    """An owner's scope when it limits anything, and its budget on the request's model when
    it has one (`model-<scope>:<entry>`, an entry counting every model it matches)."""
    name = mirror.scope_of(entity.kind, entity.id)
    limits = entity.limits
    scopes = [Scope(name, limits, entity.spend)] if limits.limits_anything else []
    model_budget = limits.model_budget(group, model)
    if model_budget is not None:
        entry, entry_limits = model_budget
        seed = entity.model_spend.get(entry, 0.0)
        scopes.append(Scope(f"model-{name}:{entry}", entry_limits, seed))
    return scopes


def _with_member_defaults(owners: list[Entity], key: Entity, team: Entity | None) -> list[Entity]:
    """The team member's limits with its team's per-model defaults under its own (LiteLLM's
    team_member_model_max_budget): a team key with a user counts against them even when
    the user has no membership row of its own."""
    if team is None or not key.user_id or not team.member_limits.model_max_budget:
        return owners
    defaults = team.member_limits
    for i, entity in enumerate(owners):
        if entity.kind == records.MEMBER:
            owners[i] = _replace(entity, entity.limits.with_model_defaults(defaults))
            return owners
    member = Entity(kind=records.MEMBER, id=f"{team.id}/{key.user_id}", limits=defaults)
    return [*owners, member]
