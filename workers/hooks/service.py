"""The service's side of the callbacks (issue #19): each finished request becomes an event
on the ledger stream, and the callbacks' consumer group delivers it (workers/hooks/consumer.py).

On the request's path the worker's reply writer only asks `ServiceHooks.finished_call` for
the event's bytes, which ride the final record's round trip: the request body as the client
sent it (without its messages when message logging is off), the answer as written (a
stream's chunks kept as they passed), the times, the bookkeeping and the trace's ids. Every
decoding (the body, the answer, assembling a stream) happens in the consumer, off the path.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from workers import envelopes
from workers.envelopes import Envelope, Record
from workers.errors import RequestCancelled, SwitchboardError, error_for_status
from workers.hooks.builtin import JsonlLogger, WebhookLogger
from workers.hooks.custom_logger import CustomLogger
from workers.hooks.dispatch import CallbackDispatcher
from workers.hooks.events import CallEvent, as_builtins
from workers.hooks.guardrails import Guardrails, log_masker
from workers.hooks.registry import Callbacks, Factory
from workers.hooks.trace_context import is_sampled
from workers.hooks.trace_record import JobTraces
from workers.sdk.assemble import stream_chunk_builder
from workers.settings.hooks import CallbackSettings, Guardrail, OtelCallback, TeamCallbacks
from workers.tenancy import events
from workers.tenancy.events import FinishedCall
from workers.wire import decode_chunk

_CALL_TYPES = {envelopes.KIND_CHAT: "completion", envelopes.KIND_EMBEDDING: "embedding"}
# The built-ins that make spans (workers/hooks/tracing.py).
TRACED_NAMES = ("otel", "langfuse")
# Body fields that are message text (dropped from the event with message logging off).
_TEXT_FIELDS = ("messages", "input", "prompt", "instructions", "system")


def call_event(
    request_id: str,
    call: FinishedCall,
    *,
    key_alias: str | None = None,
    team_id: str | None = None,
) -> CallEvent:
    """The CallEvent callbacks see, from a finished request's event (in the consumer)."""
    meta = call.meta or envelopes.Meta()
    return CallEvent(
        call_type=_CALL_TYPES.get(call.kind, "completion"),
        request_id=request_id,
        model=call.model_group,
        start_time=call.enqueued_ms / 1000,
        end_time=call.ended_ms / 1000,
        request=_request_of(call.body),
        stream=call.stream,
        response=_response(call, meta),
        error=_error_of(call),
        deployment=meta.deployment,
        provider=meta.provider,
        prompt_tokens=meta.prompt_tokens,
        completion_tokens=meta.completion_tokens,
        cost_usd=meta.cost_usd,
        cache_hit=call.cache_hit,
        queue_ms=None if call.cache_hit else max(0, call.started_ms - call.enqueued_ms),
        api_key_alias=key_alias if key_alias is not None else call.key_alias,
        team_id=team_id,
    )


def _response(call: FinishedCall, meta: envelopes.Meta) -> Any:
    if call.end == envelopes.RESPONSE and call.response:
        return call.response
    if call.end == envelopes.DONE and call.chunks:
        return stream_chunk_builder([decode_chunk(c) for c in call.chunks])
    if call.end in (envelopes.RESPONSE, envelopes.DONE):
        # Message logging off: the figures without the text.
        usage = {
            "prompt_tokens": meta.prompt_tokens,
            "completion_tokens": meta.completion_tokens,
            "total_tokens": meta.prompt_tokens + meta.completion_tokens,
        }
        return {"model": meta.deployment, "usage": usage}
    return None


def _error_of(call: FinishedCall) -> SwitchboardError | None:
    return _error(Record(seq=0, end=call.end, body=call.response, status=call.status))


def _error(record: Record) -> SwitchboardError | None:
    if record.end == envelopes.CANCELLED:
        return RequestCancelled("the client went away and the request was cancelled")
    if record.end != envelopes.ERROR:
        return None
    try:
        detail = orjson.loads(record.body)["error"]
        message, code = str(detail.get("message", "")), detail.get("code")
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        message, code = "the request failed", None
    return error_for_status(record.status, message, code=code)


class FrontDoorAnswer:
    """A request the front door answered itself (a cache hit, a guardrail's block): no
    worker saw it, so the front door tells the callbacks."""

    __slots__ = (
        "request_id",
        "kind",
        "model_group",
        "body",
        "started_s",
        "ended_s",
        "response",
        "error",
        "stream",
        "api_key_alias",
        "team_id",
    )

    def __init__(
        self,
        *,
        request_id: str,
        kind: int,
        model_group: str,
        body: bytes,
        started_s: float,
        stream: bool,
        api_key_alias: str | None,
        response: bytes | None = None,
        error: SwitchboardError | None = None,
        team_id: str | None = None,
    ) -> None:
        self.request_id = request_id
        self.kind = kind
        self.model_group = model_group
        self.body = body
        self.started_s = started_s
        self.ended_s = time.time()
        self.stream = stream
        self.api_key_alias = api_key_alias
        self.response = response
        self.error = error
        self.team_id = team_id

    def event(self) -> CallEvent:
        request = _request_of(self.body)
        usage = (orjson.loads(self.response).get("usage") or {}) if self.response else {}
        return CallEvent(
            call_type=_CALL_TYPES.get(self.kind, "completion"),
            request_id=self.request_id,
            model=self.model_group,
            start_time=self.started_s,
            end_time=self.ended_s,
            request=request,
            stream=self.stream,
            response=self.response,
            error=self.error,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            # A cached answer costs nothing this time (what it saved is a metric).
            cost_usd=0.0 if self.response is not None else None,
            cache_hit=self.response is not None,
            api_key_alias=self.api_key_alias,
            team_id=self.team_id,
        )


def _request_of(body: bytes) -> dict[str, Any]:
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return request if isinstance(request, dict) else {}


class ServiceHooks:
    """A process's callbacks: the config's lists (global, and each team's), the front
    door's in-process dispatcher (for what it answers itself), and the worker's part on the
    request's path (chunks kept, the event's bytes, the trace's ids)."""

    def __init__(
        self,
        callbacks: Callbacks,
        settings: CallbackSettings,
        teams: dict[str, Callbacks] | None = None,
    ) -> None:
        self.callbacks = callbacks
        self.settings = settings
        self.teams: dict[str, Callbacks] = teams or {}
        self.dispatcher = CallbackDispatcher(
            callbacks,
            max_queue=settings.max_queue,
            callback_timeout_s=settings.callback_timeout_s,
        )
        # Applied to each event before the callbacks see it (logging_only guardrails).
        self.transform: Callable[[CallEvent], CallEvent] | None = None
        # A stream's chunks so far, per request, while message logging is on.
        self._chunks: dict[str, list[bytes]] = {}
        # Message text rides the event only for callbacks that read it: not when message
        # logging is off, nor when the only callbacks are span exports (ids and times).
        self._keeps_text = not callbacks.turn_off_message_logging and self._reads_requests
        self._sends_body = self._reads_requests
        # Each job's trace ids and times, when a list names `otel` or `langfuse`.
        self.traces: JobTraces | None = JobTraces() if self.is_traced else None

    @property
    def reads_calls(self) -> bool:
        """Whether a callback besides the span exports is named: else an event without a
        sampled trace is of no use to anyone."""
        return self._sends_body

    @property
    def _reads_requests(self) -> bool:
        return any(
            name not in TRACED_NAMES
            for c in (self.callbacks, *self.teams.values())
            for name in (*c.success_callback, *c.failure_callback, *c.callbacks)
        )

    @property
    def is_traced(self) -> bool:
        return any(
            name in (*c.success_callback, *c.failure_callback, *c.callbacks)
            for c in (self.callbacks, *self.teams.values())
            for name in TRACED_NAMES
        )

    @classmethod
    def from_config(
        cls,
        *,
        success_callback: list[str],
        failure_callback: list[str],
        callbacks: list[str],
        turn_off_message_logging: bool,
        settings: CallbackSettings,
        guardrails: list[Guardrail] | None = None,
        team_settings: list[TeamCallbacks] | None = None,
        builds_builtins: bool = True,
    ) -> ServiceHooks | None:
        """The hooks a config asks for (None without any callback); every name resolved now,
        so a typo or a missing module stops the start. A front door, which hands events to
        the stream and delivers none itself, passes `builds_builtins=False`: the built-ins'
        names are checked, not built (see `Callbacks.check`)."""
        shared = builtin_factories(settings)
        lists = Callbacks(
            success_callback=list(success_callback),
            failure_callback=list(failure_callback),
            callbacks=list(callbacks),
            turn_off_message_logging=turn_off_message_logging,
            builtins=shared,
        )
        teams = {
            team.team_id: Callbacks(
                success_callback=list(team.success_callback),
                failure_callback=list(team.failure_callback),
                callbacks=list(team.callbacks),
                turn_off_message_logging=turn_off_message_logging,
                builtins={**shared, **team_factories(team, settings)},
            )
            for team in team_settings or []
        }
        if not lists.is_active and not any(t.is_active for t in teams.values()):
            return None
        lists.check(builds_builtins=builds_builtins)
        for team in teams.values():
            team.check(builds_builtins=builds_builtins)
        if not builds_builtins:  # what building would have refused: a missing section
            _require_sections(lists, settings, has_own_langfuse=False)
            for setting in team_settings or []:
                own = setting.langfuse(None) is not None
                _require_sections(teams[setting.team_id], settings, has_own_langfuse=own)
        hooks = cls(lists, settings, teams)
        masker = log_masker(Guardrails(guardrails or []))
        if masker is not None:
            hooks.transform = hooks.dispatcher.transform = _masking(masker)
        return hooks

    # ------------------------------------------------------------------ the worker's path

    def job_started(self, envelope: Envelope, started_ms: int) -> None:
        """In the job's task, before the provider call: its trace's ids, when tracing."""
        if self.traces is not None:
            self.traces.job_started(envelope)

    def observe(self, job_envelope: Envelope, started_ms: int, record: Record) -> None:
        """After each record is written: keep a stream's chunks (message logging on)."""
        if self._keeps_text and not record.is_final and record.chunks and job_envelope.stream:
            self._chunks.setdefault(job_envelope.request_id, []).extend(record.chunks)

    def finished_call(self, envelope: Envelope, started_ms: int, record: Record) -> bytes:
        """The final record's event for the callbacks (msgpack), written in its round trip."""
        request_id = envelope.request_id
        chunks = self._chunks.pop(request_id, None) or []
        trace = self.traces.finished(request_id) if self.traces is not None else None
        if not self._sends_body and (trace is None or not is_sampled(trace.traceparent)):
            return b""  # only span exports, and no span to make: no event at all
        body, response = envelope.body, record.body
        if record.end == envelopes.DONE:
            chunks = [*chunks, *record.chunks] if self._keeps_text else []
        if not self._sends_body:
            body = b""
        elif not self._keeps_text:
            body = without_text(body)
        if not self._keeps_text and record.end == envelopes.RESPONSE:
            response = b""
        return events.encode(
            FinishedCall(
                kind=envelope.kind,
                ingress=envelope.ingress,
                model_group=envelope.model_group,
                stream=envelope.stream,
                lane=envelope.lane,
                enqueued_ms=envelope.enqueued_ms,
                started_ms=started_ms,
                ended_ms=time.time_ns() // 1_000_000,
                end=record.end,
                status=record.status,
                body=body,
                response=response,
                chunks=chunks,
                meta=record.meta,
                trace=trace,
            )
        )

    def forget(self, request_id: str) -> None:
        """A job that ended without a final record here (shutdown, taken over)."""
        self._chunks.pop(request_id, None)
        if self.traces is not None:
            self.traces.forget(request_id)


def without_text(body: bytes) -> bytes:
    """The request body without message text (turn_off_message_logging): it never reaches
    the stream the callbacks read. Only with logging off does the worker decode the body."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return b"{}"
    if not isinstance(request, dict):
        return b"{}"
    for field in _TEXT_FIELDS:
        request.pop(field, None)
    return orjson.dumps(request)


def _masking(mask: Callable[[dict[str, Any], Any], None]) -> Callable[[CallEvent], CallEvent]:
    def transform(event: CallEvent) -> CallEvent:
        request = copy.deepcopy(event.request)
        response = as_builtins(event.response)
        mask(request, response)
        return msgspec.structs.replace(event, request=request, response=response)

    return transform


def team_factories(team: TeamCallbacks, settings: CallbackSettings) -> dict[str, Factory]:
    """A team's own built-ins: `langfuse` with the team's project keys."""
    langfuse = team.langfuse(None)
    if langfuse is None:
        return {}

    def team_langfuse() -> CustomLogger:
        from workers.hooks.tracing import span_exports

        return span_exports(None, langfuse)["langfuse"]

    return {"langfuse": team_langfuse}


def _require_sections(
    lists: Callbacks, settings: CallbackSettings, *, has_own_langfuse: bool
) -> None:
    """A built-in named without the section it needs fails the start, as building it
    would (a team with its own Langfuse project needs no global `langfuse` section)."""
    named = {*lists.success_callback, *lists.failure_callback, *lists.callbacks}
    sections = {"jsonl": settings.jsonl, "webhook": settings.webhook, "langfuse": settings.langfuse}
    if has_own_langfuse:
        del sections["langfuse"]
    for name, section in sections.items():
        if name in named:
            needs(name, section)


def needs(name: str, section: object) -> None:
    """A built-in's section, or the start fails saying which is missing."""
    if section is None:
        raise ValueError(
            f"the {name!r} callback needs a callback_settings.{name} section in the config"
        )


def builtin_factories(settings: CallbackSettings) -> dict[str, Factory]:
    """The built-ins this config can name; each is made at the start when a list names it,
    and one whose section is missing fails the start saying so."""

    def jsonl() -> CustomLogger:
        needs("jsonl", settings.jsonl)
        assert settings.jsonl is not None
        return JsonlLogger(settings.jsonl)

    def webhook() -> CustomLogger:
        needs("webhook", settings.webhook)
        assert settings.webhook is not None
        return WebhookLogger(settings.webhook)

    made: dict[str, CustomLogger] = {}

    def span_export(name: str) -> CustomLogger:
        # `otel` and `langfuse`: where the consumer sends each batch's spans.
        if name not in made:
            if name == "langfuse" and settings.langfuse is None:
                needs("langfuse", None)
            try:
                from workers.hooks.tracing import span_exports
            except ImportError as exc:
                raise ValueError(
                    f"the otel and langfuse callbacks need the otel extra "
                    f"(pip install 'switchboard-gateway[otel]'): {exc}"
                ) from exc
            # `otel` without a section: the OTLP defaults (a collector on this host).
            made.update(span_exports(settings.otel or OtelCallback(), settings.langfuse))
        return made[name]

    return {
        "jsonl": jsonl,
        "webhook": webhook,
        "otel": lambda: span_export("otel"),
        "langfuse": lambda: span_export("langfuse"),
    }
