"""Runs one job to its final record: a response, a finished stream, an error, or a
cancellation. Only a worker shutdown leaves a job without one (it stays pending for others).

This is the service's edge for errors: a passed deadline is a 504 naming the limit, a body
no provider could take is a 400, and an upstream failure is told in the words
workers/upstream_text.py allows.

A stream an earlier worker had begun (it died, or seemed to) goes on from where its records
stop when the provider can continue a partial answer (runtime/continuation.py), else ends
with a `worker_lost` error event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec
import orjson

from workers import accounting, envelopes
from workers.body_limits import check_json_bytes
from workers.envelopes import (
    INGRESS_CHAT,
    INGRESS_RESPONSES,
    KIND_CHAT,
    KIND_TEXT_COMPLETION,
    Meta,
    Record,
)
from workers.errors import (
    GatewayTimeout,
    InternalError,
    InvalidRequest,
    ProviderError,
    SwitchboardError,
)
from workers.ingress import ChatFormatter, Formatter, Ingress
from workers.ingress.responses_formatter import ResponsesFormatter
from workers.providers.base import ChatCall, EmbeddingCall, Pin
from workers.providers.media import DEFAULT_POLICY, MediaFetches, MediaPolicy
from workers.providers.openai_responses import serves_natively
from workers.routing.attempts import Call, Outcome
from workers.routing.engine import Batches, RoutingEngine
from workers.routing.tags import request_tags
from workers.runtime import continuation
from workers.runtime.continuation import Delivered, Splice
from workers.runtime.jobs import Job, ReplyRefused, ReplyTaken, ReplyWriter, now_ms
from workers.runtime.worker_metrics import WorkerMetrics
from workers.tenancy import settle
from workers.upstream_text import for_client
from workers.validation import decode_request
from workers.wire import (
    ChatCompletionChunk,
    Usage,
    chat_request_from_dict,
    decode_chat_request,
    decode_embedding_request,
    encode,
)

log = logging.getLogger("switchboard.worker")
T = TypeVar("T")


class Executor:
    def __init__(
        self,
        engine: RoutingEngine,
        writer: ReplyWriter,
        worker_id: str,
        media_policy: MediaPolicy = DEFAULT_POLICY,
        *,
        stream_continuation: bool = True,
        metrics: WorkerMetrics | None = None,
        responses_ttl_s: int = 30 * 24 * 3600,
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.worker_id = worker_id
        self.media_policy = media_policy  # switchboard_settings.media_fetch
        # switchboard_settings.stream_continuation (a deployment's own setting wins).
        self.stream_continuation = stream_continuation
        self.metrics = metrics if metrics is not None else WorkerMetrics()
        # The ingress APIs besides chat (issue #18): their translation and stored responses.
        self.ingress = Ingress(writer.redis, writer.keys, responses_ttl_s=responses_ttl_s)

    async def run(self, job: Job) -> None:
        try:
            await self._finish(job)
        except ReplyTaken:
            log.info(
                "the reply of %s was ended elsewhere (cancelled or taken over)", job.request_id
            )
        except ReplyRefused:
            log.warning(
                "redis is at its maxmemory and refused the reply of %s; answering 503",
                job.request_id,
            )
            await self.writer.refused(job)

    async def _finish(self, job: Job) -> None:
        try:
            await self._serve(job)
        except asyncio.CancelledError:
            if not job.is_cancelled_by_client:
                raise  # shutdown: no final record, no ack; another worker takes the entry
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            # Charged what its provider produced so far, as a finished request (#17).
            meta = job.produced.meta(self.worker_id) if job.produced is not None else None
            await asyncio.shield(
                self.writer.write(job, Record(seq=job.seq, end=envelopes.CANCELLED, meta=meta))
            )
        except (ReplyTaken, ReplyRefused):
            raise
        except SwitchboardError as exc:
            error = for_client(exc, exc.deployment, job.request_id)
            await self.writer.write_error(job, error, self._error_meta(exc, job))
        except Exception:
            log.exception("request %s failed unexpectedly", job.request_id)
            error = InternalError(f"internal error while serving request {job.request_id}")
            await self.writer.write_error(job, error, Meta(worker=self.worker_id))

    async def _serve(self, job: Job) -> None:
        envelope = job.envelope
        if now_ms() >= envelope.deadline_ms:
            raise _deadline_passed(job, "it waited in the queue until then")
        # The front door checked these bytes; another producer may not have.
        check_json_bytes(envelope.body)
        try:
            if envelope.kind in (KIND_CHAT, KIND_TEXT_COMPLETION):
                call, formatter = await self._chat_call(job)
                if job.resumes_stream and envelope.ingress != INGRESS_CHAT:
                    # Continuation reads the delivered chunks as chat chunks (issue #18).
                    why = "only Chat Completions streams are continued"
                    await self._lost(job, continuation.NOT_SUPPORTED, why)
                elif job.resumes_stream:
                    await self._continue(job, call)
                elif envelope.stream:
                    await self._stream(job, call, formatter)
                else:
                    await self._complete(job, call, formatter)
            else:
                await self._embed(job)
        except (GatewayTimeout, TimeoutError) as exc:
            # The router saw the deadline pass, or the deadline scope around it (asyncio's
            # timeout_at, a bare TimeoutError) expired first: either way the same 504.
            raise _deadline_passed(job, cause=exc) from exc

    async def _chat_call(self, job: Job) -> tuple[ChatCall, Formatter]:
        """The chat call, and how its reply is written in the API its client spoke."""
        body, options = _gateway_body(job)
        drop = bool(options.get("drop_params")) or self._group_drops(job.envelope.model_group)
        formatter: Formatter
        native = affinity = served_by = None
        pinned: Pin = ""
        if job.envelope.ingress == INGRESS_CHAT:
            # The front door validated these bytes; another producer may not have.
            request = decode_request(decode_chat_request, job.envelope.body)
            formatter = _chat_formatter(job, request.include_usage)
        else:
            if "metadata" in options:
                # On /v1/messages `metadata` is Anthropic's own (`user_id`), not LiteLLM's
                # request metadata: a native pass-through sends it on. On /v1/responses it
                # is the response's own, echoed and stored with it.
                body = {**body, "metadata": options["metadata"]}
            # As the front door decided: a group served natively judges its own API.
            native_group = job.envelope.ingress == INGRESS_RESPONSES and self._group_native(
                job.envelope.model_group
            )
            body, formatter, native, affinity, served_by, pinned = await self.ingress.prepare(
                job.envelope, body, drop_params=drop, native_group=native_group
            )
            request = decode_request(chat_request_from_dict, body)
        return ChatCall(
            request=request,
            body=body,
            request_id=job.request_id,
            timeout_s=job.remaining_s(),
            drop_params=bool(options.get("drop_params")),
            media=MediaFetches(self.media_policy),
            tags=request_tags(options.get("tags"), options.get("metadata")),
            is_text_completion=job.envelope.kind == KIND_TEXT_COMPLETION,
            native=native,
            affinity=affinity,
            served_by=served_by,
            pinned=pinned,
            mock_response=_mock_response(options),
        ), formatter

    def _group_drops(self, group: str) -> bool:
        """Whether every deployment of `group` drops what it cannot take (drop_params in
        its litellm_params or litellm_settings): then so does an ingress translation, which
        runs before a deployment is chosen (a client such as Claude Code cannot add
        drop_params to its bodies)."""
        targets = self.engine.targets.get(group) or ()
        return bool(targets) and all(t.route.deployment.drop_params for t in targets)

    def _group_native(self, group: str) -> bool:
        """Whether every deployment of `group` serves /v1/responses natively."""
        targets = self.engine.targets.get(group) or ()
        return bool(targets) and all(serves_natively(t.route.deployment) for t in targets)

    def _error_meta(self, exc: SwitchboardError, job: Job) -> Meta:
        """A failed request still says where it went: attempts, fallbacks, last deployment."""
        if exc.outcome is None:
            return Meta(worker=self.worker_id, takeovers=job.takeovers, **_queue_facts(job))
        return self._meta(exc.outcome, job=job)

    def _meta(
        self,
        outcome: Outcome,
        usage: Usage | None = None,
        job: Job | None = None,
        estimated: int = 0,
    ) -> Meta:
        deployment = outcome.deployment
        cost = accounting.cost_for(usage, deployment) if usage is not None else None
        takeovers = job.takeovers if job is not None else 0
        return Meta(
            deployment=deployment.label,
            provider=deployment.provider,
            # The attempts of workers that died holding it count too: each made one at least.
            attempts=outcome.attempts + takeovers,
            fallbacks=outcome.fallbacks,
            upstream_ms=round(outcome.upstream_ms, 3),
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cost_usd=cost.cost_usd if cost else None,
            worker=self.worker_id,
            cached_tokens=usage.cached_tokens if usage else 0,
            takeovers=takeovers,
            estimated_tokens=estimated if usage else 0,
            tried=outcome.tried,
            **(_queue_facts(job) if job is not None else {}),
        )

    async def _complete(self, job: Job, call: ChatCall, formatter: Formatter) -> None:
        try:
            response, outcome = await _routed(job, self.engine.chat, call)
        except (SwitchboardError, TimeoutError) as exc:
            if isinstance(formatter, ResponsesFormatter):
                # A background response's client polls the store, not this reply.
                error = exc if isinstance(exc, SwitchboardError) else _deadline_passed(job)
                await formatter.fail_stored(for_client(error, error.deployment, job.request_id))
            raise
        body = formatter.response(response)
        await formatter.settle(outcome.deployment.label)
        record = Record(
            seq=job.seq,
            end=envelopes.RESPONSE,
            body=body,
            meta=self._meta(outcome, response.usage, job),
        )
        await self.writer.write(job, record)

    async def _stream(self, job: Job, call: ChatCall, formatter: Formatter) -> None:
        first, rest, outcome = await _routed(job, self.engine.stream, call)
        await self._relay(job, formatter, first, rest, outcome)

    async def _relay(
        self,
        job: Job,
        formatter: Formatter,
        first: list[ChatCompletionChunk],
        rest: Batches,
        outcome: Outcome,
        splice: Splice | None = None,
    ) -> None:
        """Write a stream's batches as records, then its end with the usage."""
        usage: Usage | None = None
        job.produced = settle.Produced(outcome.deployment, len(job.envelope.body))
        meta: Meta | None = self._meta(outcome, job=job)
        try:
            batch: list[ChatCompletionChunk] | None = first
            while batch is not None:
                if splice is not None:
                    batch = splice.batch(batch)
                job.produced.add(batch)
                chunks, batch_usage = formatter.frame(batch)
                usage = batch_usage or usage
                if batch_usage is not None:
                    # Usage comes last (adapter contract): finish with this record.
                    break
                if chunks:
                    await self.writer.write(job, Record(seq=job.seq, chunks=chunks, meta=meta))
                    meta = None
                batch = await anext(rest, None)
            else:
                chunks = []
        except SwitchboardError as exc:
            if meta is not None:
                raise  # nothing went out yet: an HTTP error
            return await self._failed_midstream(job, formatter, exc)
        finally:
            await rest.aclose()  # type: ignore[attr-defined]  # an async generator
        chunks += formatter.finish(usage)
        await formatter.settle(outcome.deployment.label)
        estimated = splice.lost.total_tokens if splice is not None else 0
        final_meta = self._meta(outcome, usage, job, estimated)
        await self.writer.write(
            job, Record(seq=job.seq, chunks=chunks, end=envelopes.DONE, meta=final_meta)
        )

    async def _failed_midstream(
        self, job: Job, formatter: Formatter, exc: SwitchboardError
    ) -> None:
        """A stream that failed after its first record: the error record, led by the
        events the client's API ends a failed stream with (Responses: response.failed)."""
        error = for_client(exc, exc.deployment, job.request_id)
        record = envelopes.error_record(job.seq, error, self._error_meta(exc, job))
        closing = formatter.failed(error)
        if closing:
            record = msgspec.structs.replace(record, chunks=closing)
        await self.writer.write(job, record)

    async def _continue(self, job: Job, call: ChatCall) -> None:
        """Go on with a stream an earlier worker began: the same deployment, the text so far
        as the answer's prefix, only the rest relayed (its sequence numbers carry on)."""
        try:
            delivered = Delivered.read(await self.writer.records(job))
        except msgspec.DecodeError:
            return await self._lost(job, continuation.UNREADABLE, "its records are unreadable")
        if delivered.is_finished:
            # Only the end was missing (the worker died writing it): no provider call.
            self.metrics.continuation(job.envelope.model_group, continuation.FINISHED)
            meta = Meta(worker=self.worker_id, takeovers=job.takeovers)
            return await self.writer.write(job, Record(seq=job.seq, end=envelopes.DONE, meta=meta))
        served = self.engine.target_labelled(delivered.meta.deployment if delivered.meta else "")
        if served is None:
            why = "the deployment that served it is not in this worker's config"
            return await self._lost(job, continuation.NOT_SUPPORTED, why)
        group, target = served
        enabled = target.route.deployment.stream_continuation
        enabled = self.stream_continuation if enabled is None else enabled
        refused = continuation.refusal(call.request, delivered, enabled)
        if refused is not None:
            return await self._lost(job, refused, _REFUSALS[refused])
        continued = target.adapter.continuation(call, delivered.text)
        if isinstance(continued, str):
            return await self._lost(
                job, continuation.NOT_SUPPORTED, f"{target.adapter.provider}: {continued}"
            )
        try:
            async with asyncio.timeout_at(_loop_deadline(job)):
                first, rest, outcome = await self.engine.continue_stream(
                    group, target, continued.call
                )
        except SwitchboardError as exc:
            if isinstance(exc, GatewayTimeout):
                raise
            log.warning("could not continue the stream of %s: %s", job.request_id, exc)
            return await self._lost(job, continuation.FAILED, "the provider refused to continue it")
        log.info("continuing the stream of %s at %s", job.request_id, target.route.name)
        self.metrics.continuation(job.envelope.model_group, continuation.CONTINUED)
        lost = continuation.lost_usage(call.request, delivered)
        formatter = _chat_formatter(job, call.request.include_usage)
        await self._relay(
            job, formatter, first, rest, outcome, Splice(delivered, continued.skip, lost)
        )

    async def _lost(self, job: Job, reason: str, why: str) -> None:
        """End a stream an earlier worker began and that cannot go on: `worker_lost`."""
        self.metrics.continuation(job.envelope.model_group, reason)
        error = ProviderError(
            f"the worker serving request {job.request_id} stopped after part of the stream "
            f"was sent, and it could not be continued ({why}); it ends here rather than "
            "repeat text",
            code="worker_lost",
        )
        await self.writer.write_error(
            job, error, Meta(worker=self.worker_id, takeovers=job.takeovers)
        )

    async def _embed(self, job: Job) -> None:
        body, options = _gateway_body(job)
        request = decode_request(decode_embedding_request, job.envelope.body)
        call = EmbeddingCall(
            request=request,
            body=body,
            request_id=job.request_id,
            timeout_s=job.remaining_s(),
            drop_params=bool(options.get("drop_params")),
            tags=request_tags(options.get("tags"), options.get("metadata")),
        )
        response, outcome = await _routed(job, self.engine.embed, call)
        usage = Usage(
            prompt_tokens=response.usage.prompt_tokens,
            completion_tokens=0,
            total_tokens=response.usage.total_tokens,
        )
        record = Record(
            seq=job.seq,
            end=envelopes.RESPONSE,
            body=encode(response),
            meta=self._meta(outcome, usage, job),
        )
        await self.writer.write(job, record)


# The words a `worker_lost` error uses for each reason a stream was not continued.
_REFUSALS = {
    continuation.DISABLED: "stream_continuation is off for its deployment",
    continuation.SEVERAL_CHOICES: "it has several choices (n > 1)",
    continuation.TOOL_CALL: "it was calling a tool",
    continuation.REASONING: "it carries reasoning, which a continuation cannot",
}


def _chat_formatter(job: Job, include_usage: bool) -> ChatFormatter:
    return ChatFormatter(include_usage, text_completion=job.envelope.kind == KIND_TEXT_COMPLETION)


def _mock_response(options: dict[str, Any]) -> str | None:
    """LiteLLM's request `mock_response` (text only; its exception forms are not served)."""
    value = options.get("mock_response")
    return value if isinstance(value, str) else None


def _gateway_body(job: Job) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        return job.gateway_body()
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"the request body is not valid JSON: {exc}", code="invalid_json"
        ) from exc


def _deadline_passed(
    job: Job, detail: str = "", *, cause: BaseException | None = None
) -> GatewayTimeout:
    """The one 504 for a request out of time, naming its limit: the body's `timeout`, or the
    operator's request_timeout_s, whichever is smaller (the front door capped it)."""
    envelope = job.envelope
    limit_s = (envelope.deadline_ms - envelope.enqueued_ms) / 1000
    error = GatewayTimeout(
        f"request {job.request_id} did not finish within its deadline of {limit_s:g}s "
        "(the request's `timeout`, at most the gateway's request_timeout_s)"
        + (f"; {detail}" if detail else "")
    )
    if isinstance(cause, SwitchboardError):
        # Where the request got to still goes in the error record's bookkeeping.
        error.outcome = cause.outcome
    return error


async def _routed(job: Job, route: Callable[..., Awaitable[T]], call: Call) -> T:
    """`route` (the engine's chat, stream or embed) for the job's model group, retries and
    key scope, under the job's deadline."""
    envelope = job.envelope
    async with asyncio.timeout_at(_loop_deadline(job)):
        return await route(
            envelope.model_group, call, envelope.num_retries, scope=envelope.allowed_groups
        )


def _loop_deadline(job: Job) -> float:
    """The job's deadline on the event loop's clock (for asyncio.timeout_at)."""
    loop = asyncio.get_running_loop()
    return loop.time() + job.remaining_s()


def _queue_facts(job: Job) -> dict[str, Any]:
    """The lane a request waited on and how long, for the request inspector (issue #21)."""
    return {"lane": job.lane, "queue_wait_ms": max(0, job.started_ms - job.envelope.enqueued_ms)}
