"""The worker's side of the callbacks: each request's final reply record becomes a
`CallEvent` for the process's dispatcher (issue #19).

`ServiceHooks.observe` is the ReplyWriter's observer: it runs after every record is written
(so after the request's cost was settled in its final record's Meta) and does no more than
keep a stream's chunk bytes and, at the end, queue a small `FinishedRequest`. Decoding the
request body, the response, the error and assembling a stream happen in `event()`, on the
delivery task.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson

from workers import envelopes
from workers.envelopes import Envelope, Record
from workers.errors import RequestCancelled, SwitchboardError, error_for_status
from workers.hooks.builtin import JsonlLogger, WebhookLogger
from workers.hooks.custom_logger import CustomLogger
from workers.hooks.dispatch import CallbackDispatcher
from workers.hooks.events import CallEvent
from workers.hooks.registry import Callbacks, Factory
from workers.sdk.assemble import stream_chunk_builder
from workers.settings.hooks import CallbackSettings
from workers.wire import decode_chunk

if TYPE_CHECKING:
    from workers.hooks.tracing import Tracing

# The envelope fields a callback reads (the rest of a Job is the worker's business).
_CALL_TYPES = {envelopes.KIND_CHAT: "completion", envelopes.KIND_EMBEDDING: "embedding"}


class FinishedRequest:
    """A request's end as the writer saw it; `event()` turns it into a CallEvent later."""

    __slots__ = ("envelope", "started_ms", "ended_s", "record", "chunks")

    def __init__(
        self, envelope: Envelope, started_ms: int, record: Record, chunks: list[bytes] | None
    ) -> None:
        self.envelope = envelope
        self.started_ms = started_ms
        self.ended_s = time.time()
        self.record = record
        self.chunks = chunks

    def event(self) -> CallEvent:
        envelope, record = self.envelope, self.record
        meta = record.meta or envelopes.Meta()
        request = _request_of(envelope.body)
        return CallEvent(
            call_type=_CALL_TYPES.get(envelope.kind, "completion"),
            request_id=envelope.request_id,
            model=envelope.model_group,
            start_time=envelope.enqueued_ms / 1000,
            end_time=self.ended_s,
            request=request,
            stream=envelope.stream,
            response=self._response(),
            error=_error(record),
            deployment=meta.deployment,
            provider=meta.provider,
            prompt_tokens=meta.prompt_tokens,
            completion_tokens=meta.completion_tokens,
            cost_usd=meta.cost_usd,
            queue_ms=max(0, self.started_ms - envelope.enqueued_ms),
        )

    def _response(self) -> Any:
        record = self.record
        if record.end == envelopes.RESPONSE:
            return record.body
        if record.end == envelopes.DONE and self.chunks is not None:
            chunks = [decode_chunk(c) for c in (*self.chunks, *record.chunks)]
            return stream_chunk_builder(chunks) if chunks else None
        return None


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
        api_key_alias: str,
        response: bytes | None = None,
        error: SwitchboardError | None = None,
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
        )


def _request_of(body: bytes) -> dict[str, Any]:
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return request if isinstance(request, dict) else {}


class ServiceHooks:
    """A process's callbacks: the config's lists, the dispatcher and the writer's observer."""

    def __init__(self, callbacks: Callbacks, settings: CallbackSettings) -> None:
        self.callbacks = callbacks
        self.dispatcher = CallbackDispatcher(
            callbacks,
            max_queue=settings.max_queue,
            callback_timeout_s=settings.callback_timeout_s,
        )
        # A stream's chunks so far, per request, while message logging is on.
        self._chunks: dict[str, list[bytes]] = {}
        self._keeps_chunks = not callbacks.turn_off_message_logging
        # Spans of each job when a list names `otel` or `langfuse` (workers/hooks/tracing.py).
        self.tracing: Tracing | None = find_tracing(callbacks)

    @classmethod
    def from_config(
        cls,
        *,
        success_callback: list[str],
        failure_callback: list[str],
        callbacks: list[str],
        turn_off_message_logging: bool,
        settings: CallbackSettings,
        tracing: CustomLogger | None = None,
    ) -> ServiceHooks | None:
        """The hooks a config asks for (None without any callback); every name resolved now,
        so a typo or a missing module stops the start."""
        lists = Callbacks(
            success_callback=list(success_callback),
            failure_callback=list(failure_callback),
            callbacks=list(callbacks),
            turn_off_message_logging=turn_off_message_logging,
            builtins=builtin_factories(settings, tracing),
        )
        if not lists.is_active:
            return None
        lists.check()
        return cls(lists, settings)

    def job_started(self, envelope: Envelope, started_ms: int) -> None:
        """In the job's task, before the provider call: its spans, when tracing."""
        if self.tracing is not None:
            self.tracing.job_started(envelope, started_ms)

    def observe(self, job_envelope: Envelope, started_ms: int, record: Record) -> None:
        """After each record is written: keep a stream's chunks; queue the end."""
        request_id = job_envelope.request_id
        if not record.is_final:
            if self._keeps_chunks and record.chunks and job_envelope.stream:
                self._chunks.setdefault(request_id, []).extend(record.chunks)
            return
        if self.tracing is not None:
            self.tracing.job_finished(job_envelope, record)
        chunks = self._chunks.pop(request_id, None)
        if job_envelope.stream and self._keeps_chunks and chunks is None:
            chunks = []
        self.dispatcher.offer(FinishedRequest(job_envelope, started_ms, record, chunks))

    def forget(self, request_id: str) -> None:
        """A job that ended without a final record here (shutdown, taken over)."""
        self._chunks.pop(request_id, None)
        if self.tracing is not None:
            self.tracing.job_abandoned(request_id)


def find_tracing(callbacks: Callbacks) -> Tracing | None:
    for name in ("otel", "langfuse"):
        lists = (*callbacks.success_callback, *callbacks.failure_callback, *callbacks.callbacks)
        if name in lists:
            target = callbacks.resolve(name)
            return target  # type: ignore[no-any-return]  # the otel/langfuse factories make Tracing
    return None


def builtin_factories(
    settings: CallbackSettings, tracing: CustomLogger | None = None
) -> dict[str, Factory]:
    """The built-ins this config can name; each is made at the start when a list names it,
    and one whose section is missing fails the start saying so. `tracing`: the process's
    tracer, when it already has one (the front door's), for `otel` and `langfuse`."""

    def needs(name: str, section: object) -> None:
        if section is None:
            raise ValueError(
                f"the {name!r} callback needs a callback_settings.{name} section in the config"
            )

    def jsonl() -> CustomLogger:
        needs("jsonl", settings.jsonl)
        assert settings.jsonl is not None
        return JsonlLogger(settings.jsonl)

    def webhook() -> CustomLogger:
        needs("webhook", settings.webhook)
        assert settings.webhook is not None
        return WebhookLogger(settings.webhook)

    shared: list[CustomLogger] = [tracing] if tracing is not None else []

    def make_tracing() -> CustomLogger:
        # `otel` and `langfuse` share one tracer provider, each adding its exporter.
        if not shared:
            if settings.otel is None and settings.langfuse is None:
                needs("otel", None)
            try:
                from workers.hooks.tracing import Tracing
            except ImportError as exc:
                raise ValueError(
                    f"the otel and langfuse callbacks need the otel extra "
                    f"(pip install 'switchboard-gateway[otel]'): {exc}"
                ) from exc
            shared.append(Tracing.from_settings(settings.otel, settings.langfuse))
        return shared[0]

    return {"jsonl": jsonl, "webhook": webhook, "otel": make_tracing, "langfuse": make_tracing}
