"""The service's callback delivery (issue #19): a consumer group, `callbacks`, on the stream
of finished-request events the spend ledger reads (workers/redis_streams/finished_events.py).

Each worker runs one consumer. It takes a batch of events (entries a dead consumer left
pending first, then new ones), makes each into what the callbacks receive (LiteLLM's kwargs,
the response object, the spans), delivers the batch to every callback the event's lists
name (the global ones and its team's, `default_team_settings`), and acknowledges the batch
only after. A callback that fails is retried with backoff (up to 5 s apart): a span export
(`otel`, `langfuse`) for `retry_for_s`, so a collector down for ten minutes gets every span
afterwards; any other callback three times (the webhook retries inside each attempt). Then
the rest is given up and counted. The callbacks that succeeded are not called again.

Nothing waits in process memory: the stream holds the backlog. Its callbacks' part is held
to `callback_settings.max_queue`: past it the oldest unread events are skipped for the
callbacks (counted) and left for the ledger; `switchboard_callback_backlog` is the gauge.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis

from workers import envelopes
from workers.hooks.custom_logger import CustomLogger, overrides
from workers.hooks.events import CallEvent, view
from workers.hooks.registry import Callbacks
from workers.hooks.service import ServiceHooks, call_event
from workers.redis_streams import Keys, TenancyKeys, finished_events
from workers.tenancy import events
from workers.tenancy.events import FinishedCall

if TYPE_CHECKING:
    from workers.hooks.tracing import SpanExport

log = logging.getLogger("switchboard.callbacks")

BLOCK_MS = 1000
CLAIM_IDLE_MS = 30_000
MAX_PAUSE_S = 5.0
FIRST_PAUSE_S = 0.1
# Attempts of a callback that is not a span export (its failure is likely a bug, not an
# outage: it must not hold every other event up for long).
CALLBACK_ATTEMPTS = 3
# The built-ins that export spans: they get failures too, wherever they are named.
SPAN_EXPORTS = frozenset({"otel", "langfuse"})
# Seconds a stopping worker keeps delivering (then leaves the rest pending for the others).
CLOSE_GRACE_S = 5.0


class _Event:
    """One entry of a batch, made into what the callbacks receive lazily, once: a config
    with only span exports never decodes a body or builds LiteLLM's kwargs."""

    __slots__ = ("entry_id", "request_id", "call", "who", "hooks", "_event", "_view", "_spans")
    counts = 1

    def __init__(
        self,
        entry_id: bytes,
        request_id: str,
        call: FinishedCall,
        who: events.FrontEvent | None,
        hooks: ServiceHooks,
    ) -> None:
        self.entry_id = entry_id
        self.request_id = request_id
        self.call = call
        self.who = who
        self.hooks = hooks
        self._event: CallEvent | None = None
        self._view: tuple[dict[str, Any], Any] | None = None
        self._spans: list[Any] | None = None

    @property
    def team_id(self) -> str | None:
        return self.who.team_id if self.who is not None else self.call.team_id

    @property
    def is_success(self) -> bool:
        return self.call.end not in (envelopes.ERROR, envelopes.CANCELLED)

    @property
    def event(self) -> CallEvent:
        if self._event is None:
            who = self.who
            event = call_event(
                self.request_id,
                self.call,
                key_alias=who.key_alias if who else None,
                team_id=self.team_id,
            )
            if self.hooks.transform is not None:
                event = self.hooks.transform(event)
            self._event = event
        return self._event

    def view(self, redact: bool) -> tuple[dict[str, Any], Any]:
        if self._view is None:
            self._view = view(self.event, redact=redact)
        return self._view

    def spans(self, export: SpanExport) -> list[Any]:
        if self._spans is None:
            from workers.hooks.tracing import call_spans

            self._spans = call_spans(self.request_id, self.call, export.resource)
        return self._spans


class _FrontSpans:
    """The spans a front door saw end (its relays, its own answers) for one team, from one
    entry: for the span exports alone. `counts` 0: not a request's event (the offered and
    delivered counts are requests')."""

    __slots__ = ("entry_id", "team_id", "records", "_spans")
    is_success = True
    counts = 0

    def __init__(
        self, entry_id: bytes, team_id: str | None, records: list[events.FrontSpan]
    ) -> None:
        self.entry_id = entry_id
        self.team_id = team_id
        self.records = records
        self._spans: list[Any] | None = None

    def spans(self, export: SpanExport) -> list[Any]:
        if self._spans is None:
            from workers.hooks.tracing import front_span

            self._spans = [front_span(record, export.resource) for record in self.records]
        return self._spans


_Item = _Event | _FrontSpans


class _Owed:
    """A callback's share of a batch still to deliver, and how often it failed."""

    __slots__ = ("name", "target", "events", "failures")

    def __init__(self, name: str, target: Any) -> None:
        self.name = name
        self.target = target
        self.events: list[_Item] = []
        self.failures = 0


class CallbackConsumer:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        hooks: ServiceHooks,
        consumer: str,
        *,
        claim_idle_ms: int = CLAIM_IDLE_MS,
        stand_by_s: float = 0.0,
    ) -> None:
        self.redis = redis
        self.stream = keys.tenancy.ledger
        self.group = TenancyKeys.CALLBACKS_GROUP
        self.hooks = hooks
        self.consumer = consumer
        self.claim_idle_ms = claim_idle_ms
        # Other consumers of the group (the callbacks process, or without one the batch
        # process) deliver; this one reads only when their reading falls this far behind
        # (0: always reads). See `_others_keep_up`.
        self.stand_by_s = stand_by_s
        settings = hooks.settings
        self.cap = settings.max_queue
        self.batch_size = settings.batch_size
        self.linger_s = settings.linger_s
        self.retry_for_s = settings.retry_for_s
        self.callback_timeout_s = settings.callback_timeout_s
        self.redact = hooks.callbacks.turn_off_message_logging
        # Read by the metrics collector (workers/hooks/hook_metrics.py).
        self.offered = 0
        self.dropped = 0
        self.given_up = 0
        # The front doors' span records (relays, their own answers) a span export gave up on.
        self.front_spans_given_up = 0
        self.depth = 0
        self.delivered: collections.Counter[str] = collections.Counter()
        self.failed: collections.Counter[str] = collections.Counter()
        self._closing_at: float | None = None
        # Who gets an event, by (success, team): see `_targets`.
        self._chosen: dict[
            tuple[bool, str | None], list[tuple[tuple[str | None, str], str, Any]]
        ] = {}

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Deliver for as long as the process runs (a supervised loop)."""
        while True:
            try:
                await finished_events.ensure_group(self.redis, self.stream, self.group)
                while True:
                    await self.step()
            except Exception:  # Redis gone, a bug: nothing unacked is lost
                log.exception("callback consumer failed; retrying")
                await asyncio.sleep(MAX_PAUSE_S)

    async def step(self) -> int:
        """One batch: hold the cap, take entries, deliver them, ack them. How many."""
        await self._hold_cap()
        entries = await finished_events.claim_idle(
            self.redis, self.stream, self.group, self.consumer, self.claim_idle_ms, self.batch_size
        )
        if not entries and await self._others_keep_up():
            await asyncio.sleep(self.linger_s)
            return 0
        if not entries:
            block = None if self._closing_at is not None else BLOCK_MS
            entries = await finished_events.read_group(
                self.redis, self.stream, self.group, self.consumer, self.batch_size, block
            )
            if 0 < len(entries) < self.batch_size and self._closing_at is None:
                # Let a batch fill: one export (an HTTP POST, a protobuf message) for many
                # requests costs far less CPU than one each, and callbacks are not urgent.
                await asyncio.sleep(self.linger_s)
                entries += await finished_events.read_group(
                    self.redis,
                    self.stream,
                    self.group,
                    self.consumer,
                    self.batch_size - len(entries),
                    None,
                )
        if not entries:
            if self._closing_at is not None:
                await asyncio.sleep(0.05)
            return 0
        batch = [item for entry_id, fields in entries for item in self._items(entry_id, fields)]
        self.offered += sum(item.counts for item in batch)
        if await self._deliver(batch):
            ids = [entry_id for entry_id, _ in entries]
            await finished_events.ack_and_trim(self.redis, self.stream, self.group, ids)
        return len(entries)

    async def _others_keep_up(self) -> bool:
        """Whether to leave the events to the group's other consumers: with `stand_by_s`, while
        nothing is unread or the oldest unread entry was written under `stand_by_s` ago.

        An interactive worker's export (the protobuf encoding of a batch's spans, ~15-30 ms
        of CPU for 200 requests) runs in a thread that holds its event loop's GIL: every
        request the worker serves meanwhile waits for the GIL at each wake-up, 5-15 ms in
        all (issue #22: the slowest 1% at c=1, docs/performance.md). The callbacks process
        (broker/callbacks_process.py) serves no request, so its exports delay none."""
        if not self.stand_by_s or self._closing_at is not None:
            return False
        behind_ms = await finished_events.read_behind_ms(self.redis, self.stream, self.group)
        return 0 <= behind_ms < self.stand_by_s * 1000

    async def _hold_cap(self) -> None:
        backlog, skipped = await finished_events.drop_past_cap(
            self.redis, self.stream, self.group, self.cap
        )
        if skipped:
            self.dropped += skipped
            log.warning("callbacks: %d events skipped, the backlog passed %d", skipped, self.cap)
        self.depth = backlog

    def _items(self, entry_id: bytes, fields: dict[bytes, bytes]) -> list[_Item]:
        """What an entry gives the callbacks: a request's event, a front door's spans (one
        item per team among them), or nothing (a spend event without callbacks' part: the
        sweeper's, say)."""
        raw = fields.get(TenancyKeys.CALL_FIELD)
        if raw is not None:
            event = self._event(entry_id, fields, raw)
            return [] if event is None else [event]
        raw = fields.get(TenancyKeys.FRONT_SPANS_FIELD)
        if raw is None:
            return []
        try:
            records = events.decode_front_spans(raw)
        except Exception:
            self.failed["event"] += 1
            log.exception("the front door spans %r could not be read", entry_id)
            return []
        by_team: dict[str | None, list[events.FrontSpan]] = {}
        for record in records:
            by_team.setdefault(record.team_id, []).append(record)
        return [_FrontSpans(entry_id, team, spans) for team, spans in by_team.items()]

    def _event(self, entry_id: bytes, fields: dict[bytes, bytes], raw: bytes) -> _Event | None:
        try:
            call = events.decode_call(raw)
            front = fields.get(TenancyKeys.EVENT_FIELD)
            who = events.decode_front(front) if front is not None else None
            request_id = fields[TenancyKeys.REQUEST_FIELD].decode()
        except Exception:
            self.failed["event"] += 1
            log.exception("the finished-request event %r could not be read", entry_id)
            return None
        return _Event(entry_id, request_id, call, who, self.hooks)

    # ------------------------------------------------------------------ delivery

    def _owed(self, batch: list[_Item]) -> list[_Owed]:
        """Who gets which events: each event's lists (global, then its team's; a name in
        both is the team's), each callback once per event; a front door's spans go to the
        span exports alone."""
        owed: dict[tuple[str | None, str], _Owed] = {}
        for item in batch:
            spans_only = isinstance(item, _FrontSpans)
            for key, name, target in self._targets(item):
                if spans_only and not _is_span_export(target):
                    continue
                share = owed.get(key)
                if share is None:
                    share = owed[key] = _Owed(name, target)
                share.events.append(item)
        return list(owed.values())

    def _targets(self, item: _Item) -> list[tuple[tuple[str | None, str], str, Any]]:
        # The lists never change while the process runs: worked out once per outcome and
        # configured team (a team without settings of its own has the global lists), not
        # for every event of every batch.
        team_id = item.team_id if item.team_id in self.hooks.teams else None
        key = (item.is_success, team_id)
        chosen = self._chosen.get(key)
        if chosen is None:
            chosen = self._chosen[key] = self._choose(item.is_success, team_id)
        return chosen

    def _choose(
        self, ok: bool, team_id: str | None
    ) -> list[tuple[tuple[str | None, str], str, Any]]:
        team = self.hooks.teams.get(team_id) if team_id else None
        team_names = set(_named(team, ok)) if team is not None else set()
        chosen: list[tuple[tuple[str | None, str], str, Any]] = []
        for owner, scope in ((self.hooks.callbacks, None), (team, team_id)):
            if owner is None:
                continue
            for given in _named(owner, ok):
                if scope is None and given in team_names:
                    continue  # the team's own (its Langfuse project) replaces the global one
                target = owner.resolve(given)
                # A team's built-in is its own (its keys); an import path is one object.
                own = scope if isinstance(given, str) and given in owner.builtins else None
                chosen.append(((own, str(given)), _name(given, target), target))
        return chosen

    async def _deliver(self, batch: list[_Item]) -> bool:
        """Deliver until every callback has its share, or gives up. False: the process is
        stopping with some undelivered (left pending for the next consumer)."""
        owed = [share for share in self._owed(batch) if share.events]
        started = time.monotonic()
        pause_s = FIRST_PAUSE_S
        while owed:
            owed = [share for share in owed if not await self._try(share)]
            if not owed:
                break
            now = time.monotonic()
            if self._closing_at is not None and now >= self._closing_at:
                return False
            for share in list(owed):
                if self._exhausted(share, now - started):
                    self.given_up += sum(item.counts for item in share.events)
                    self.front_spans_given_up += sum(
                        len(item.records) for item in share.events if isinstance(item, _FrontSpans)
                    )
                    log.error(
                        "callback %s: %d events given up after %d failures",
                        share.name,
                        len(share.events),
                        share.failures,
                    )
                    owed.remove(share)
            if owed:
                ids = [item.entry_id for item in batch]
                await finished_events.keep_claimed(
                    self.redis, self.stream, self.group, self.consumer, ids
                )
                await self._hold_cap()
                await asyncio.sleep(pause_s if self._closing_at is None else FIRST_PAUSE_S)
                pause_s = min(pause_s * 2, MAX_PAUSE_S)
        return True

    def _exhausted(self, share: _Owed, elapsed_s: float) -> bool:
        if _is_span_export(share.target):
            return elapsed_s >= self.retry_for_s
        return share.failures >= CALLBACK_ATTEMPTS

    async def _try(self, share: _Owed) -> bool:
        """One attempt at a callback's share; True when all of it is delivered."""
        if _is_span_export(share.target):
            spans = [span for item in share.events for span in item.spans(share.target)]
            if await asyncio.to_thread(share.target.export, spans):
                self.delivered[share.name] += sum(item.counts for item in share.events)
                share.events.clear()
                return True
            share.failures += 1
            self.failed[share.name] += 1
            log.info("span export to %s failed; retrying", share.name)
            return False
        # Any other callback's share holds requests' events alone (`_owed`).
        requests = [item for item in share.events if isinstance(item, _Event)]
        calls = [(self._hooks(share.target, item), item) for item in requests]
        if all(not inspect.iscoroutinefunction(h) for hooks, _ in calls for h in hooks):
            try:
                work = [(hooks, _args(item.view(self.redact))) for hooks, item in calls]
            except Exception:  # an event that cannot be viewed: one by one, each counted
                pass
            else:
                return await self._try_in_thread(share, work)
        while requests:
            item = requests[0]
            try:
                await self._call(share.target, item)
            except Exception:
                share.failures += 1
                self.failed[share.name] += 1
                log.exception("callback %s failed", share.name)
                return False
            self.delivered[share.name] += 1
            requests.pop(0)
            share.events.pop(0)
        return True

    async def _try_in_thread(
        self, share: _Owed, work: list[tuple[list[Callable[..., Any]], tuple[Any, ...]]]
    ) -> bool:
        """A callback with sync hooks only: its whole share in one worker thread (a thread
        hop per event cost more CPU than most callbacks themselves)."""
        timeout_s = max(self.callback_timeout_s, getattr(share.target, "delivery_timeout_s", 0.0))
        try:
            async with asyncio.timeout(timeout_s * len(work)):
                done, error = await asyncio.to_thread(_run_in_order, work)
        except TimeoutError as exc:
            done, error = 0, exc
        self.delivered[share.name] += done
        del share.events[:done]
        if error is None:
            return True
        share.failures += 1
        self.failed[share.name] += 1
        log.error("callback %s failed", share.name, exc_info=error)
        return False

    @staticmethod
    def _hooks(target: Any, item: _Event) -> list[Callable[..., Any]]:
        if isinstance(target, CustomLogger):
            names = (
                ("log_success_event", "async_log_success_event")
                if item.is_success
                else ("log_failure_event", "async_log_failure_event")
            )
            return [getattr(target, n) for n in names if overrides(target, n)]
        return [target] if callable(target) else []

    async def _call(self, target: Any, item: _Event) -> None:
        args = _args(item.view(self.redact))
        timeout_s = max(self.callback_timeout_s, getattr(target, "delivery_timeout_s", 0.0))
        for hook in self._hooks(target, item):
            async with asyncio.timeout(timeout_s):
                if inspect.iscoroutinefunction(hook):
                    await hook(*args)
                else:
                    await asyncio.to_thread(hook, *args)

    # ------------------------------------------------------------------ tests, shutdown

    async def flush(self, timeout_s: float = 30.0) -> None:
        """Wait until the group has delivered everything on the stream (tests, benchmarks)."""
        async with asyncio.timeout(timeout_s):
            while await finished_events.backlog(self.redis, self.stream, self.group):  # noqa: ASYNC110  # the backlog is in Redis, shared by processes: no event to wait on
                await asyncio.sleep(0.05)

    async def aclose(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """Deliver what is on the stream for up to `grace_s` (the loop must still run),
        then close the built-ins that hold a file or a connection."""
        self._closing_at = time.monotonic() + grace_s
        try:
            await self.flush(grace_s)
        except TimeoutError:
            log.warning("callbacks: stopping with %d events left on the stream", self.depth)
        except Exception:
            log.exception("callbacks: could not check the backlog while stopping")
        for lists in (self.hooks.callbacks, *self.hooks.teams.values()):
            for logger in lists.loggers():
                close = getattr(logger, "aclose", None)
                if close is not None:
                    try:
                        await close()
                    except Exception:
                        log.exception("closing callback %s failed", type(logger).__name__)

    async def leave(self) -> None:
        """Once the delivery loop has stopped: leave the group, unless this consumer still
        holds events (a batch given up mid-retry; the next reader claims them) or is the
        group's last (see finished_events.leave_group)."""
        try:
            await finished_events.leave_group(self.redis, self.stream, self.group, self.consumer)
        except Exception:
            log.exception("callbacks: could not leave the consumer group")


def _args(view: tuple[dict[str, Any], Any]) -> tuple[Any, ...]:
    kwargs, response = view
    return (kwargs, response, kwargs["start_time"], kwargs["end_time"])


def _run_in_order(
    work: list[tuple[list[Callable[..., Any]], tuple[Any, ...]]],
) -> tuple[int, BaseException | None]:
    """Call each event's hooks in order (in a worker thread); how many events were
    delivered, and the error that stopped the rest."""
    for done, (hooks, args) in enumerate(work):
        try:
            for hook in hooks:
                hook(*args)
        except Exception as exc:
            return done, exc
    return len(work), None


def _named(lists: Callbacks, is_success: bool) -> list[Any]:
    """A list's entries for an event: the success or failure list, then `callbacks`; the
    span exports wherever they are named (a trace shows failures too)."""
    functions = lists.success_callback if is_success else lists.failure_callback
    other = lists.failure_callback if is_success else lists.success_callback
    named = [*functions, *(c for c in lists.callbacks if c not in functions)]
    return named + [c for c in other if c in SPAN_EXPORTS and c not in named]


def _name(given: Any, target: Any) -> str:
    if isinstance(given, str):
        return given
    return str(getattr(target, "__qualname__", None) or type(target).__name__)


def _is_span_export(target: Any) -> bool:
    return hasattr(target, "export") and hasattr(target, "resource")
